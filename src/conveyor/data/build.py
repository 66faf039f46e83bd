"""Build: hash a file or folder (memo first), store what is new, and describe it as a tree.

``scan`` is shared by ``add`` (which stores objects), ``status`` and ``checkout`` (which only
hash). Files whose (inode, mtime, size) match the memo are never read; the others are read once,
on several threads, and written to the cache from the same buffer. A folder whose files' stat
results all match the last scan (one digest over all of them) is not even looked up file by file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
import time
from array import array
from pathlib import Path
from typing import NamedTuple

from conveyor.data import hashing
from conveyor.data.objects import Batch, ObjectDB, storage_error, write_new
from conveyor.data.state import RACY_NS, StateMemo, stat_key
from conveyor.data.tree import Entry, Tree
from conveyor.foundation.atomic import write_all
from conveyor.foundation.errors import DataError, PathError
from conveyor.foundation.progress import Progress, Silent

_CHUNK = 64  # files per task handed to a worker thread or process
_MANY = 2000  # from this many small files on, store them from one process per core
_PROCESSES = os.environ.get("CONVEYOR_PROCESSES", "1") != "0"

# A found file: (path relative to the scanned folder, absolute path, inode, mtime_ns, size, exec).
Found = tuple[str, str, int, int, int, bool]


class Built(NamedTuple):
    """What a tracked path holds now: one file's oid, or a folder's tree.

    ``tree`` is None when the folder was recognised by its stat digest alone; :meth:`entries`
    then loads the tree from the cache if it is there.
    """

    oid: str
    is_tree: bool
    size: int
    nfiles: int
    tree: Tree | None = None


class Listing(NamedTuple):
    """Every regular file under a folder, in columns (cheap to build, cheap to digest)."""

    base: str
    rels: list[str]  # paths relative to ``base``
    stats: array[int]  # inode, mtime_ns, size, mode: four numbers per file

    def digest(self) -> str:
        """One hash of every path and stat result: equal digests mean an unchanged folder."""
        return hashing.hash_bytes("\0".join(self.rels).encode() + self.stats.tobytes())

    def found(self) -> list[Found]:
        s = self.stats
        return [
            (
                rel,
                f"{self.base}/{rel}",
                s[4 * i],
                s[4 * i + 1],
                s[4 * i + 2],
                bool(s[4 * i + 3] & 0o100),
            )
            for i, rel in enumerate(self.rels)
        ]


def walk(folder: Path) -> Listing:
    """Every regular file under ``folder`` (symlinks to files followed, to folders not).

    The hot loop of ``status`` on a large folder: one ``stat`` per file, relative to an open
    folder descriptor, and no object built per file beyond its relative path. A folder with
    several sub-folders is walked by two processes (threads would only fight over the GIL):
    a forked child walks the second half of the sub-folders while this process walks the
    first. The order of the result (and so its digest) does not depend on how it was shared.
    """
    base = os.fspath(folder)
    rels, numbers, subdirs = _walk_one(base, "", recurse=False)
    half = (len(subdirs) + 1) // 2
    if len(subdirs) >= _FORK_DIRS and _PROCESSES:
        first, second = _walk_forked(subdirs[:half], subdirs[half:])
    else:
        first, second = _walk_all(subdirs[:half]), _walk_all(subdirs[half:])
    for part_rels, part_numbers in (first, second):
        rels.extend(part_rels)
        numbers.extend(part_numbers)
    return Listing(base, rels, array("q", numbers))


_FORK_DIRS = 4  # sub-folders from which a second process pays for its start


def _walk_all(tops: list[tuple[str, str]]) -> tuple[list[str], list[int]]:
    rels: list[str] = []
    numbers: list[int] = []
    for path, prefix in tops:
        r, n, _ = _walk_one(path, prefix, recurse=True)
        rels.extend(r)
        numbers.extend(n)
    return rels, numbers


def _walk_forked(
    mine: list[tuple[str, str]], theirs: list[tuple[str, str]]
) -> tuple[tuple[list[str], list[int]], tuple[list[str], list[int]]]:
    import marshal

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: walk, send, leave without running any cleanup of the parent's
        code = 0
        try:
            os.close(read_end)
            write_all(write_end, marshal.dumps(_walk_all(theirs)))
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        first = _walk_all(mine)
        chunks = []
        while chunk := os.read(read_end, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if status != 0:  # the child could not walk (a folder it could not read): do it here
        return first, _walk_all(theirs)
    rels, numbers = marshal.loads(b"".join(chunks))
    return first, (rels, numbers)


def _walk_one(
    top: str, top_prefix: str, *, recurse: bool
) -> tuple[list[str], list[int], list[tuple[str, str]]]:
    """Files under ``top`` (all, or only its own with ``recurse`` False), and the sub-folders
    left unwalked."""
    rels: list[str] = []
    numbers: list[int] = []
    left: list[tuple[str, str]] = []
    add_rel, add_numbers, stat, is_reg = rels.append, numbers.extend, os.stat, stat_mod.S_ISREG
    stack: list[tuple[str, str]] = [(top, top_prefix)]
    while stack:
        path, prefix = stack.pop()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except PermissionError as exc:
            raise PathError(f"cannot read folder {path}: permission denied") from exc
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    name = entry.name
                    if entry.is_dir(follow_symlinks=False):
                        sub = (f"{path}/{name}", f"{prefix}{name}/")
                        (stack if recurse else left).append(sub)
                        continue
                    try:
                        st = stat(name, dir_fd=fd)
                    except FileNotFoundError:
                        continue  # a dangling symlink or a file removed while we look
                    if is_reg(st.st_mode):
                        add_rel(prefix + name)
                        add_numbers((st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode))
        except PermissionError as exc:
            raise PathError(f"cannot read folder {path}: permission denied") from exc
        finally:
            os.close(fd)
    return rels, numbers, left


def scan(
    root: Path,
    target: Path,
    memo: StateMemo,
    *,
    store: Batch | None = None,
    odb: ObjectDB | None = None,
    need_tree: bool = False,
    jobs: int = 4,
    progress: Progress | None = None,
) -> Built:
    """Hash ``target`` (a file or folder inside ``root``), storing new objects in ``store``.

    With ``store``, the result is only taken from the folder digest if the cache holds every
    object of that tree. With ``need_tree``, a folder's :class:`Tree` is always returned (read
    from ``odb`` when the digest matched, rebuilt otherwise).
    """
    rel_target = target.relative_to(root).as_posix()
    try:
        st = os.stat(target)
    except FileNotFoundError:
        raise PathError(f"{rel_target} does not exist") from None
    except PermissionError:
        raise PathError(f"{rel_target} cannot be read: permission denied") from None
    if stat_mod.S_ISREG(st.st_mode):
        return _scan_file(rel_target, os.fspath(target), st, memo, store, progress)
    if not stat_mod.S_ISDIR(st.st_mode):
        raise PathError(f"{rel_target} is neither a file nor a folder")

    listing = walk(target)
    digest = listing.digest()
    size = sum(listing.stats[2::4])
    nfiles = len(listing.rels)
    odb = store.odb if store is not None else odb
    known_oid = memo.get_dir(rel_target, digest)
    if known_oid is not None:
        quick = _from_digest(known_oid, size, nfiles, memo, store, odb, need_tree)
        if quick is not None:
            return quick
    files = listing.found()

    known = memo.under(rel_target)
    oids: dict[str, str] = {}
    pending: list[Found] = []
    for f in files:
        hit = known.get(f"{rel_target}/{f[0]}")
        fresh = hit is not None and hit[0] == (f[2], f[3], f[4])
        # An object already stored is trusted by its stamp; one without is re-hashed, and a
        # corrupt one quarantined so that this good copy of the file replaces it.
        if fresh and (store is None or store.odb.holds(hit[1])):  # type: ignore[index]
            oids[f[0]] = hit[1]  # type: ignore[index]
            continue
        pending.append(f)
    if pending:
        oids.update(_hash_all(pending, store, jobs, progress or Silent()))
        memo.save((f"{rel_target}/{f[0]}", (f[2], f[3], f[4]), oids[f[0]]) for f in pending)

    tree = Tree.of([Entry(f[0], oids[f[0]], f[4], f[5]) for f in files])
    data = tree.to_bytes()
    tree_oid = store.add_bytes(data) if store is not None else hashing.hash_bytes(data)
    horizon = time.time_ns() - RACY_NS
    if all(f[3] < horizon for f in files):
        memo.save_dir(rel_target, digest, tree_oid)
    return Built(tree_oid, True, size, nfiles, tree)


def _from_digest(
    oid: str,
    size: int,
    nfiles: int,
    memo: StateMemo,
    store: Batch | None,
    odb: ObjectDB | None,
    need_tree: bool,
) -> Built | None:
    if store is not None and not memo.is_complete(oid, store.odb.generation()):
        return None
    if not need_tree:
        return Built(oid, True, size, nfiles)
    if odb is None or not odb.exists(oid):
        return None
    return Built(oid, True, size, nfiles, Tree.from_bytes(odb.read_bytes(oid), oid=oid))


def _scan_file(
    rel: str,
    path: str,
    st: os.stat_result,
    memo: StateMemo,
    store: Batch | None,
    progress: Progress | None,
) -> Built:
    digest = memo.get(rel, st)
    if digest is None or (store is not None and not store.odb.holds(digest)):
        found = ("", path, st.st_ino, st.st_mtime_ns, st.st_size, bool(st.st_mode & 0o100))
        digest = _hash_all([found], store, 1, progress or Silent())[""]
        memo.save([(rel, stat_key(st), digest)])
    return Built(digest, False, st.st_size, 1)


def _hash_all(
    pending: list[Found], store: Batch | None, jobs: int, progress: Progress
) -> dict[str, str]:
    total = sum(f[4] for f in pending)
    progress.start("hashing" if store is None else "storing", total, unit="bytes")

    def work(chunk: list[Found]) -> list[tuple[str, str]]:
        out = []
        for f in chunk:
            try:
                oid = hashing.hash_file(f[1], f[4]) if store is None else store.add_file(f[1], f[4])
            except PermissionError:
                raise PathError(f"cannot read {f[1]}: permission denied") from None
            out.append((f[0], oid))
            progress.advance(f[4])
        return out

    results: dict[str, str] = {}
    try:
        big = [f for f in pending if f[4] >= hashing.SMALL]
        small = [f for f in pending if f[4] < hashing.SMALL]
        # Large files already use two threads each (copy and hash): run them one at a time.
        results.update(work(big))
        chunks = [small[i : i + _CHUNK] for i in range(0, len(small), _CHUNK)]
        cores = os.cpu_count() or 1
        if store is not None and cores > 1 and len(small) >= _MANY and _PROCESSES:
            results.update(_store_in_processes(small, store, cores, progress))
        elif jobs <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                results.update(work(chunk))
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="conveyor-hash") as pool:
                for part in pool.map(work, chunks):
                    results.update(part)
    finally:
        progress.stop()
    return results


def _store_in_processes(
    small: list[Found], store: Batch, cores: int, progress: Progress
) -> dict[str, str]:
    """Read, hash and write small files from one forked process per core.

    Hashing small inputs holds the GIL, so threads cannot use a second core for it. Unless
    objects must be flushed before they are named (``core.fsync: true``, where the parent
    flushes and renames them all together), each child names its own objects as it finishes a
    task: the journal first, then the renames, so the renames run on every core too.
    """
    import multiprocessing

    odb = store.odb
    odb.make_shards()  # once here, not once per task in every child
    odb.settle()
    name = odb.sync != "always"
    size = _CHUNK * 4 if name else _CHUNK  # a journal per task: fewer, larger tasks
    tasks = [
        (os.fspath(odb.root), os.fspath(odb.tmp), odb.sync, small[i : i + size])
        for i in range(0, len(small), size)
    ]
    results: dict[str, str] = {}
    # Forked by this thread (and by the pool's own handler thread), both of which outlive the
    # pool: the death signal, which follows the forking thread, fires only when we are gone.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(cores, initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        for part in pool.imap_unordered(_store_chunk, tasks):
            for rel, oid, tmp, nbytes in part:
                if tmp is not None:
                    store.adopt(tmp, oid)
                results[rel] = oid
                progress.advance(nbytes)
    return results


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In a storing process: end at once, silently, when the command that started it ends.

    Otherwise a killed ``conveyor add`` leaves its storing processes working through their
    task and then printing a BrokenPipeError traceback each, when they hand in the result.
    SIGKILL, because there is nothing to clean up: an unnamed object vanishes with its
    descriptor, and a named temp file is cleared by the next command. Ctrl-C is the parent's
    to handle (it ends the pool), not each child's to print a KeyboardInterrupt for.
    """
    import ctypes
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # not Linux: only the parent stops them
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it ended before the death signal was set
        os._exit(0)


def _store_chunk(
    task: tuple[str, str, str, list[Found]],
) -> list[tuple[str, str, str | None, int]]:
    root, tmp_dir, sync, chunk = task
    odb = ObjectDB(Path(root), Path(tmp_dir), sync=sync)
    odb.all_shards = odb.settled = True  # the parent did both before the children started
    if sync != "always" and _UNNAMED[0]:
        try:
            return _store_unnamed(odb, chunk)
        except _NoTmpfile:
            _UNNAMED[0] = False
    out: list[tuple[str, str, str | None, int]] = []
    written: list[tuple[str, str]] = []
    for rel, path, _ino, _mtime, size, _x in chunk:
        data = _read_file(path, size)
        oid = hashing.hash_bytes(data)
        if odb.holds(oid):
            out.append((rel, oid, None, size))
            continue
        tmp = odb.temp_path()
        try:
            write_new(tmp, data)
        except OSError as exc:
            raise storage_error(path, exc) from exc
        out.append((rel, oid, tmp, size))
        written.append((tmp, oid))
    if sync == "always":
        return out  # the parent flushes and names them, all at once
    odb.name_all(written)
    return [(rel, oid, None, size) for rel, oid, _tmp, size in out]


_UNNAMED = [hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")]


def _read_file(path: str, size: int) -> bytes:
    """The bytes of a file listed with ``size``; refused if it no longer has that size."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except PermissionError:
        raise PathError(f"cannot read {path}: permission denied") from None
    try:
        data = _read_all(fd, size + 1)
    finally:
        os.close(fd)
    if len(data) != size:
        raise DataError(f"{path} changed while it was being stored")
    return data


def _read_all(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes (fewer only at the end of the file): a read may return less."""
    data = os.read(fd, limit)
    if len(data) < limit:
        parts = [data]
        while limit > (got := sum(map(len, parts))) and (more := os.read(fd, limit - got)):
            parts.append(more)
        data = b"".join(parts)
    return data


class _NoTmpfile(Exception):
    """The filesystem cannot make unnamed files: write named temp files instead."""


def _store_unnamed(odb: ObjectDB, chunk: list[Found]) -> list[tuple[str, str, str | None, int]]:
    """Write each new object as an unnamed file (``O_TMPFILE``), then link them all into place.

    One directory entry per object instead of a temp name and a rename; a writer killed before
    linking leaves nothing behind (the kernel frees unnamed files with their last descriptor).
    """
    folder = odb.temp_folder()
    out: list[tuple[str, str, str | None, int]] = []
    unnamed: list[tuple[int, str]] = []
    try:
        for rel, path, _ino, _mtime, size, _x in chunk:
            data = _read_file(path, size)
            oid = hashing.hash_bytes(data)
            out.append((rel, oid, None, size))
            if odb.holds(oid):
                continue
            try:
                fd = os.open(folder, os.O_WRONLY | os.O_TMPFILE, 0o444)
            except OSError as exc:
                if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL) and not unnamed:
                    raise _NoTmpfile from exc
                raise storage_error(path, exc) from exc
            unnamed.append((fd, oid))
            try:
                write_all(fd, data)
            except OSError as exc:
                raise storage_error(path, exc) from exc
        try:
            odb.link_all(unnamed)
        except OSError as exc:
            raise storage_error(f"{len(unnamed)} objects", exc) from exc
    finally:
        for fd, _ in unnamed:
            os.close(fd)
    return out
