"""Putting an object at a workspace path: reflink, hardlink, symlink or copy.

The link types are tried in the configured order; a type the filesystem refuses (a reflink on
ext4, a hardlink across devices) is dropped for the rest of the run and the next one is used.
Copies are written to a temp file and renamed into place, so a killed checkout never leaves a
half-written file under a tracked name.

Every object is checked on its way out (:meth:`ObjectDB.check`): its stamp, from a ``stat``
taken anyway, proves it unwritten since it was named; one without is re-hashed, and a corrupt
one is refused (:class:`CorruptObject`) and nothing is left at its place.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading

from conveyor.data.hashing import copy_all
from conveyor.data.objects import CorruptObject, ObjectDB, stamped
from conveyor.foundation.errors import ConfigError, DataError

FICLONE = 0x40049409
_REFUSED = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM, errno.ENOSYS}


class Linker:
    def __init__(self, odb: ObjectDB, types: list[str]) -> None:
        unknown = [t for t in types if t not in _METHODS]
        if unknown or not types:
            raise ConfigError(f"unknown link type {unknown[0] if unknown else '(none)'!r}")
        self.odb = odb
        self.types = list(types)
        self.used: set[str] = set()
        self._lock = threading.Lock()

    def link(self, oid: str, dest: str, executable: bool = False) -> os.stat_result:
        """Put object ``oid`` at ``dest``; returns the ``stat`` of what is there now."""
        src = self.odb.file(oid)
        kind = self.types[0]
        try:  # the common case: the preferred type works, as it did for the last file
            source = _METHODS[kind](self, src, dest, executable)
        except OSError:
            pass  # decide below, with the fallbacks
        else:
            self.used.add(kind)
            return self._checked(oid, dest, source)
        for kind in list(self.types):
            try:
                source = _METHODS[kind](self, src, dest, executable)
            except OSError as exc:
                if exc.errno in _REFUSED or (kind == "hardlink" and exc.errno == errno.EMLINK):
                    if exc.errno != errno.EMLINK:
                        self._drop(kind)
                    continue
                if exc.errno == errno.ENOENT and not os.path.exists(src):
                    raise DataError(
                        f"object {oid} for {dest} has gone from the cache",
                        hint="run `conveyor fsck`, then `conveyor pull` to fetch it again",
                    ) from exc
                raise DataError(f"cannot write {dest}: {exc.strerror}") from exc
            with self._lock:
                self.used.add(kind)
            return self._checked(oid, dest, source)
        raise DataError(
            f"no link type in {','.join(self.types) or 'the configured list'} works for {dest}",
            hint="add copy to the list: `conveyor config cache.type reflink,copy`",
        )

    def _checked(self, oid: str, dest: str, source: os.stat_result | None) -> os.stat_result:
        """``dest``'s stat, once the object behind it is known good (else it is removed).

        ``source`` is the object's stat for a copy; a link's own stat is the object's.
        """
        st = os.stat(dest)
        seen = st if source is None else source
        if stamped(oid, seen):
            return st
        try:
            good = self.odb.check(oid, seen)
        except FileNotFoundError:
            good = False
        if not good:
            os.unlink(dest)
            raise CorruptObject(oid, dest)
        return os.stat(dest) if source is None else st  # a link shares the new stamp

    def _drop(self, kind: str) -> None:
        with self._lock:
            if kind in self.types and len(self.types) > 1:
                self.types.remove(kind)

    def _temp(self) -> str:
        return self.odb.temp_path()

    # Each method returns the object's stat where it has it for free (an open descriptor), or
    # None where the result shares the object's inode.
    def _reflink(self, src: str, dest: str, executable: bool) -> os.stat_result | None:
        tmp = self._temp()
        with open(src, "rb") as s:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _mode(executable))
            try:
                fcntl.ioctl(fd, FICLONE, s.fileno())
            except BaseException:
                os.close(fd)
                os.unlink(tmp)
                raise
            os.close(fd)
            source = os.fstat(s.fileno())
        _rename(tmp, dest)
        return source

    def _hardlink(self, src: str, dest: str, executable: bool) -> os.stat_result | None:
        os.link(src, dest)
        return None

    def _symlink(self, src: str, dest: str, executable: bool) -> os.stat_result | None:
        os.symlink(src, dest)
        return None

    def _copy(self, src: str, dest: str, executable: bool) -> os.stat_result | None:
        tmp = self._temp()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _mode(executable))
        try:
            src_fd = os.open(src, os.O_RDONLY)
            try:
                copy_all(src_fd, fd)
                source = os.fstat(src_fd)
            finally:
                os.close(src_fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        _rename(tmp, dest)
        return source


_METHODS = {
    "reflink": Linker._reflink,
    "hardlink": Linker._hardlink,
    "symlink": Linker._symlink,
    "copy": Linker._copy,
}


def _mode(executable: bool) -> int:
    return 0o777 if executable else 0o666


def _rename(tmp: str, dest: str) -> None:
    try:
        os.rename(tmp, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            os.unlink(tmp)
            raise
        # The workspace folder is on another filesystem than .conveyor/: copy across.
        import shutil

        shutil.copyfile(tmp, dest)
        os.unlink(tmp)
