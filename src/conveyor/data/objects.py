"""The object store: immutable, read-only files named by the BLAKE3 hash of their bytes.

Layout: ``objects/ab/cdef...`` (the first two hex digits shard the folder). An object is written
to a temp file under the project's ``tmp/`` folder, made durable, then renamed into place, so a
file under ``objects/`` always holds exactly the bytes its name says, even if the writer is killed
at any moment. Leftover temp files of dead writers are removed by :meth:`ObjectDB.clean_tmp`.

Writes go through a :class:`Batch`: many objects are written, then renamed into place together.
How they reach the disk is ``core.fsync``: ``journal`` (the default) names them at once and leaves
the writeback to the kernel, with a journal that lets the next command catch a crash
(:mod:`conveyor.data.journal`); ``true`` flushes them with one ``syncfs`` before they are named;
``false`` does neither.

Every object is stamped when it is named: the nanoseconds of its mtime are taken from its oid
(:func:`stamp_ns`). Any later write to the file (through a hardlink or symlink in the workspace,
an editor, a stray ``chmod +w``) sets a new mtime, so one ``stat`` tells an object that is
exactly as it was named from one that must be re-hashed before it is trusted
(:meth:`ObjectDB.check`): push and checkout verify that way without reading every byte.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from conveyor.data import hashing, journal
from conveyor.foundation import atomic, fsflags
from conveyor.foundation.errors import DataError
from conveyor.foundation.lock import alive

_counter = itertools.count()
_local = threading.local()
_epoch = [0]  # bumped by release_tmp: cached temp folders may be gone
GENERATION = ".generation"
SYNC_MODES = ("journal", "always", "never")


class ObjectDB:
    """Objects under ``root``, temp files under ``tmp`` (same filesystem).

    ``sync`` says when new objects reach the disk: ``always`` before they are named, ``journal``
    in the kernel's own time with a journal to check after a crash (``always`` where the system
    has no boot id), ``never`` when the kernel likes.
    """

    def __init__(self, root: Path, tmp: Path, *, sync: str = "always") -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"unknown sync mode {sync!r}")
        self.root = root
        self._root = os.fspath(root)
        self.tmp = tmp
        self._tmp = os.fspath(tmp)
        self.sync = "always" if sync == "journal" and journal.boot_id() is None else sync
        self.journal = root.parent / "journal"
        self.quarantined = root.parent / "quarantine"  # where crash recovery moves bad objects
        self._lock = threading.Lock()
        self._shards: set[str] = set()  # made or seen by this instance
        self.all_shards = False  # True once all 256 are known to exist
        self.settled = False  # this command has settled earlier commands' journals

    @property
    def durable(self) -> bool:
        """Whether each object is flushed before it is named."""
        return self.sync == "always"

    def recover(self) -> journal.Recovered:
        """Check what commands named before a crash (cheap if none); see :mod:`.journal`."""
        return journal.recover(self)

    # -- reading -------------------------------------------------------------------------
    def path(self, oid: str) -> Path:
        return self.root / hashing.object_path(oid)

    def file(self, oid: str) -> str:
        """:meth:`path` as a string, for the hot loops that touch thousands of objects."""
        return f"{self._root}/{hashing.object_path(oid)}"

    def exists(self, oid: str) -> bool:
        return os.path.exists(f"{self._root}/{hashing.object_path(oid)}")

    def read_bytes(self, oid: str) -> bytes:
        try:
            return self.path(oid).read_bytes()
        except FileNotFoundError:
            raise DataError(
                f"object {oid} is not in the cache",
                hint="run `conveyor pull` to fetch it from a remote",
            ) from None

    def verify(self, oid: str) -> bool:
        """Re-hash the object; False if its bytes no longer match its name."""
        return hashing.hash_file(self.path(oid)) == oid

    def check(self, oid: str, st: os.stat_result | None = None) -> bool:
        """True if the object's bytes are its name's: by its stamp (one ``stat``, or ``st``
        if the caller has one), else by re-hashing it (and stamping it when they match).

        False if they differ, or the object cannot be read; a missing object raises
        FileNotFoundError.
        """
        path = self.file(oid)
        if st is None:
            st = os.stat(path)
        if stamped(oid, st):
            return True
        try:
            good = hashing.hash_file(path, st.st_size) == oid
        except FileNotFoundError:
            raise
        except OSError:
            return False
        if good:
            with contextlib.suppress(OSError):  # not ours to touch (a shared cache): re-hash then
                stamp(path, oid)
        return good

    def holds(self, oid: str) -> bool:
        """Whether the cache holds ``oid`` with good bytes, so that a writer need not store it.

        Writers ask this instead of :meth:`exists`, for the same one ``stat`` when the object
        is missing or stamped. An unstamped one is re-hashed (:meth:`check`); if its bytes no
        longer match, it is moved to the quarantine and False tells the caller, who has the
        good bytes at hand, to store them again: adding a good copy repairs the cache.
        """
        path = self.file(oid)
        try:
            st = os.stat(path)
        except OSError:
            return False
        if stamped(oid, st):
            return True
        try:
            if self.check(oid, st):
                return True
            self.quarantine(oid, self.quarantined)
        except FileNotFoundError:
            pass  # moved aside meanwhile by another writer that found it corrupt too
        except OSError as exc:
            raise storage_error(f"a good copy of the corrupt object {oid}", exc) from exc
        return False

    def starting_with(self, prefix: str) -> list[str]:
        """The oids in the store that start with ``prefix`` (two hex digits or more), sorted."""
        shard, rest = hashing.sharded(prefix)
        try:
            names = os.listdir(f"{self._root}/{shard}")
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(o for n in names if n.startswith(rest) and (o := hashing.oid_at(shard, n)))

    def iter_oids(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for shard in sorted(os.listdir(self.root)):
            if not hashing.is_shard(shard):
                continue
            for rest in sorted(os.listdir(self.root / shard)):
                oid = hashing.oid_at(shard, rest)
                if oid:
                    yield oid

    # -- the generation: changes whenever an object leaves the store ----------------------
    def generation(self) -> str | None:
        """A token that changes whenever an object is removed; None if it cannot be trusted.

        Callers that cache "every object of tree T is present" key that fact by this token.
        Read it *before* checking objects, so that a removal running meanwhile invalidates it.
        """
        token = self.root / GENERATION
        try:
            return token.read_text()
        except FileNotFoundError:
            if not self.root.is_dir():
                return None
        # A cache without a token (new, or wiped by hand): nothing can refer to a fresh one.
        self._bump()
        return token.read_text()

    def forget_complete(self) -> None:
        """Make every "tree complete" mark stale (an object may have gone missing)."""
        self._bump()

    def _bump(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.root / GENERATION, os.urandom(16).hex())

    # -- removing ------------------------------------------------------------------------
    def remove(self, oid: str) -> None:
        self.remove_many([oid])

    def remove_many(self, oids: Iterable[str]) -> int:
        """Delete objects; returns how many existed."""
        self._bump()
        removed = 0
        try:
            for oid in oids:
                try:
                    os.unlink(self.path(oid))
                    removed += 1
                except FileNotFoundError:
                    pass
        finally:
            self._bump()
        return removed

    def quarantine(self, oid: str, where: Path) -> Path:
        """Move a corrupt object aside (kept for inspection) so that it can be fetched again."""
        where.mkdir(parents=True, exist_ok=True)
        target = where / oid
        self._bump()
        try:
            os.replace(self.path(oid), target)
        finally:
            self._bump()
        return target

    def clean_tmp(self) -> int:
        """Remove temp files left by writers that died; returns how many were removed.

        Entries are named after their writer's pid; those of living processes (this one
        included) are left alone.
        """
        if not self.tmp.is_dir():
            return 0
        removed = 0
        for entry in os.scandir(self.tmp):
            pid = entry.name.split(".", 1)[0]
            if pid.isdigit() and alive(int(pid)):
                continue
            if entry.is_dir(follow_symlinks=False):
                import shutil

                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed += 1
        return removed

    # -- writing -------------------------------------------------------------------------
    def batch(self) -> Batch:
        return Batch(self)

    def ensure_tmp(self) -> None:
        """Make the temp folder, marked so that its writers' folders spread over the disk."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        fsflags.spread_children(self.tmp)

    def will_name(self, oids: Iterable[str]) -> None:
        """Call before renaming complete temp files to ``oids``: a journal, or a flush."""
        if self.sync == "journal":
            self.settle()
            journal.record(self.journal, oids)
        elif self.sync == "always":
            atomic.syncfs(self.tmp)

    def settle(self) -> None:
        """Once per command that writes objects: settle the journals earlier commands left."""
        if not self.settled and self.sync == "journal":
            self.settled = True
            journal.recover(self, settle=True)

    def named(self) -> None:
        """Call after such renames: with ``always``, make the new names durable too."""
        if self.sync == "always":
            atomic.syncfs(self.root)

    def link_all(self, unnamed: list[tuple[int, str]]) -> None:
        """Give complete unnamed files (open ``O_TMPFILE`` descriptors) their objects' names.

        An object named meanwhile by another writer is left as it is: it holds the same bytes.
        """
        if not unnamed:
            return
        self.will_name(oid for _, oid in unnamed)
        proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
        try:
            for fd, oid in unnamed:
                stamp(fd, oid)
                self._ensure_shard(hashing.sharded(oid)[0])
                with contextlib.suppress(FileExistsError):
                    os.link(str(fd), self.file(oid), src_dir_fd=proc, follow_symlinks=True)
        finally:
            os.close(proc)

    def place(self, tmp: str, oid: str) -> None:
        """Rename one complete temp file to its object's name (after :meth:`will_name`)."""
        stamp(tmp, oid)
        self._ensure_shard(hashing.sharded(oid)[0])
        os.replace(tmp, self.file(oid))

    def name_all(self, staged: list[tuple[str, str]]) -> None:
        """Rename complete temp files to their objects' names, as ``sync`` says."""
        if not staged:
            return
        try:
            self.will_name(oid for _, oid in staged)
            for tmp, oid in staged:
                self.place(tmp, oid)
            self.named()
        except OSError as exc:
            raise storage_error(f"{len(staged)} object(s)", exc) from exc

    def temp_path(self) -> str:
        """A new temp file name in this thread's own folder under ``tmp/``.

        One folder per process and thread: creating thousands of files in one shared folder
        serialises every writer on that folder's lock in the kernel.
        """
        return f"{self.temp_folder()}/{next(_counter)}.tmp"

    def temp_folder(self) -> str:
        """This process's and thread's own folder under ``tmp/`` (made when first asked for)."""
        mine: tuple[tuple[int, int], dict[str, str]] | None = getattr(_local, "dirs", None)
        key = (os.getpid(), _epoch[0])
        if mine is None or mine[0] != key:  # a new thread, a child after fork, or released
            mine = _local.dirs = (key, {})
        folder = mine[1].get(self._tmp)
        if folder is None:
            folder = f"{self._tmp}/{key[0]}.{threading.get_ident()}.d"
            os.makedirs(folder, exist_ok=True)
            mine[1][self._tmp] = folder
        return folder

    def release_tmp(self) -> None:
        """Remove this process's temp folders that are empty; call at the end of a command."""
        _epoch[0] += 1
        prefix = f"{os.getpid()}."
        with contextlib.suppress(FileNotFoundError), os.scandir(self.tmp) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.name.endswith(".d"):
                    with contextlib.suppress(OSError):
                        os.rmdir(entry.path)

    def _ensure_shard(self, shard: str) -> None:
        # mkdir locks the parent folder even when the shard exists: ask once per instance
        if not self.all_shards and shard not in self._shards:
            os.makedirs(f"{self._root}/{shard}", exist_ok=True)
            with self._lock:
                self._shards.add(shard)

    def make_shards(self) -> None:
        """Make all 256 shard folders now, before many writers would each try to."""
        for shard in range(256):
            self._ensure_shard(f"{shard:02x}")
        self.all_shards = True


class Batch:
    """Objects written now and put in place together when the batch closes.

    Thread-safe: worker threads may add files concurrently. If the block raises, nothing that
    was staged is put in place.
    """

    def __init__(self, odb: ObjectDB) -> None:
        self.odb = odb
        self._staged: list[tuple[str, str]] = []
        self._staged_oids: set[str] = set()
        self._lock = threading.Lock()
        odb.ensure_tmp()

    def _claim(self, oid: str) -> bool:
        """True if this caller should write ``oid`` (not held intact, not staged yet)."""
        if self.odb.holds(oid):
            return False
        with self._lock:
            if oid in self._staged_oids:
                return False
            self._staged_oids.add(oid)
            return True

    def _stage(self, tmp: str, oid: str) -> None:
        with self._lock:
            self._staged.append((tmp, oid))

    def add_bytes(self, data: bytes) -> str:
        oid = hashing.hash_bytes(data)
        if self._claim(oid):
            tmp = self.odb.temp_path()
            try:
                write_new(tmp, data)
            except OSError as exc:
                raise storage_error(f"an object of {len(data)} bytes", exc) from exc
            self._stage(tmp, oid)
        return oid

    def adopt(self, tmp: str, oid: str) -> None:
        """Take a temp file that another process wrote and hashed as ``oid``."""
        if self._claim(oid):
            self._stage(tmp, oid)
        else:
            os.unlink(tmp)

    def add_file(self, src: str, size: int) -> str:
        """Store the file at ``src`` (reading it once) and return its oid."""
        if size < hashing.SMALL:
            with open(src, "rb", buffering=0) as f:
                data = f.read()
            if len(data) != size:
                raise DataError(f"{src} changed while it was being stored")
            return self.add_bytes(data)
        tmp = self.odb.temp_path()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except OSError as exc:
            raise storage_error(src, exc) from exc
        try:
            oid = hashing.copy_and_hash(src, fd, size, durable=self.odb.durable)
            if self.odb.durable:
                os.fsync(fd)
        except BaseException as exc:
            os.close(fd)
            os.unlink(tmp)
            if isinstance(exc, OSError) and exc.filename is None:
                raise storage_error(src, exc) from exc
            raise
        os.close(fd)
        if self._claim(oid):
            self._stage(tmp, oid)
        else:
            os.unlink(tmp)
        return oid

    def commit(self) -> None:
        self.odb.name_all(self._staged)
        self._staged.clear()

    def discard(self) -> None:
        for tmp, _ in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._staged.clear()

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def stamp_ns(oid: str) -> int:
    """The nanoseconds part of the mtime of an object nobody wrote to since it was named.

    Always odd: a filesystem that keeps coarser mtimes (whole seconds on ext3, HFS+ and many
    network shares, 2 s on FAT, 100 ns on NTFS) stores a multiple of its step, so neither the
    stamp it cannot hold nor a later write can ever match, and every check there re-hashes.
    An even stamp of 0 would match every write on such a filesystem: a corrupt object trusted.
    """
    return int(oid[:8], 16) % 1_000_000_000 | 1


def stamp(file: str | int, oid: str) -> None:
    """Set the mtime of an object's file (a path or descriptor) to carry :func:`stamp_ns`.

    The second is the one before now: the file keeps a true age (for tools that compare
    mtimes), and never one in the future.
    """
    ns = (time.time_ns() // 1_000_000_000 - 1) * 1_000_000_000 + stamp_ns(oid)
    os.utime(file, ns=(ns, ns))


def stamped(oid: str, st: os.stat_result) -> bool:
    """Whether ``st`` (an object file's stat) shows no write since the object was named."""
    return st.st_mtime_ns % 1_000_000_000 == stamp_ns(oid)


class CorruptObject(DataError):
    """An object whose bytes no longer hash to its name."""

    def __init__(self, oid: str, where: str) -> None:
        super().__init__(
            f"cache object {oid} for {where} is corrupt: its bytes no longer match its hash",
            hint="run `conveyor fsck` to move it aside, then `conveyor pull` to fetch a good copy",
        )
        self.oid = oid
        self.where = where


def write_new(path: str, data: bytes) -> None:
    """Create ``path`` holding ``data``; on any failure (a full disk) remove it again."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        atomic.write_all(fd, data)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def storage_error(what: str, exc: OSError) -> DataError:
    """A failed write to the cache, said for a user (a full disk is the usual cause)."""
    hint = "free some disk space, then run the command again"
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        hint = "check the permissions and free space of .conveyor/"
    return DataError(f"cannot store {what} in the cache: {exc.strerror or exc}", hint=hint)
