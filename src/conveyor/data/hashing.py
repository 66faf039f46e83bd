"""BLAKE3 content hashes, and the copy-while-hashing that puts a file into the cache.

A hash is 64 lowercase hex digits. Small files are read once into memory, hashed and written
from the same buffer. Large files are read in chunks that are hashed and written from the same
buffers with direct I/O (``O_DIRECT``): the copy then needs no new page cache, whose pages can
cost more to get than the copy itself (in a virtual machine that has given its free memory back
to the host, every new page is a fault there), and the object's bytes are exactly the bytes that
were hashed. Where direct I/O is refused (tmpfs, some network filesystems) the kernel copies
(``copy_file_range``) while another thread hashes the source through ``mmap``.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import threading
from typing import Any

import blake3

from conveyor.foundation import atomic
from conveyor.foundation.errors import DataError

OID_RE = re.compile(r"[0-9a-f]{64}")
SMALL = 4 << 20  # read whole below this size
_CHUNK = 64 << 20
_DIRECT_CHUNK = 16 << 20  # one read, hash and direct write; a few in flight at once
_DIRECT_BUFFERS = 4
_BLOCK = 4096  # direct writes are whole blocks; the file is cut to its size at the end
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Any:
    """libc's sync_file_range (start writeback of a range without waiting), or None."""
    import ctypes

    func = getattr(atomic.libc(), "sync_file_range", None)
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return func


def is_oid(text: str) -> bool:
    return OID_RE.fullmatch(text) is not None  # match() with $ would take a trailing newline


# Every store files an object as ``ab/cdef...`` (the cache, both remotes, the run-cache): the
# first two hex digits name its folder, so no folder holds more than about 1/256 of them.
def sharded(oid: str) -> tuple[str, str]:
    """An object's folder and its file name in that folder: ``("ab", "cdef...")``."""
    return oid[:2], oid[2:]


def object_path(oid: str) -> str:
    """An object's path below a store's root: ``ab/cdef...``."""
    return f"{oid[:2]}/{oid[2:]}"


def is_shard(folder: str) -> bool:
    """Whether a folder below a store's root may hold objects (``.tmp`` and the like do not)."""
    return len(folder) == 2


def oid_at(folder: str, name: str) -> str | None:
    """The oid a store's ``folder/name`` holds, or None for anything else (temp files)."""
    oid = folder + name
    return oid if is_shard(folder) and is_oid(oid) else None


def hash_bytes(data: bytes | memoryview) -> str:
    return blake3.blake3(data).hexdigest()


def hash_file(path: str | os.PathLike[str], size: int | None = None) -> str:
    """Hash a file's bytes; large files are hashed on every core through mmap."""
    if size is None:
        size = os.stat(path).st_size
    if size < SMALL:
        with open(path, "rb", buffering=0) as f:
            return hash_bytes(f.read())
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(os.fspath(path))
    return hasher.hexdigest()


def copy_and_hash(src: str | os.PathLike[str], dst_fd: int, size: int, *, durable: bool) -> str:
    """Copy ``src`` into the open, empty file ``dst_fd`` and return the hash of what was copied.

    A filesystem that shares blocks between files (btrfs, XFS) gets a clone; others a direct
    copy, or the kernel's. If the source changes size while it is copied, the copy is refused.
    """
    cloned = _clone(src, dst_fd)
    if cloned is not None:
        return _hash_copy(src, dst_fd, size, cloned)
    if _direct(dst_fd):
        try:
            return _direct_copy_and_hash(src, dst_fd, size)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: this file refuses direct writes after all
                raise
            _direct(dst_fd, on=False)
            os.ftruncate(dst_fd, 0)
            os.lseek(dst_fd, 0, os.SEEK_SET)
    return _kernel_copy_and_hash(src, dst_fd, size, durable=durable)


def _direct(fd: int, *, on: bool = True) -> bool:
    """Switch direct I/O on (or off) for ``fd``; False where the system or filesystem cannot."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    import fcntl

    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag if on else flags & ~flag)
    except OSError:
        return False
    return True


def _direct_copy_and_hash(src: str | os.PathLike[str], dst_fd: int, size: int) -> str:
    """Read chunks into aligned buffers, hash them, and have a thread write them directly."""
    import mmap
    import queue

    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[mmap.mmap, int, int] | None] = queue.SimpleQueue()
    for _ in range(_DIRECT_BUFFERS):
        free.put(mmap.mmap(-1, _DIRECT_CHUNK))  # page-aligned, as direct I/O needs
    failed: list[BaseException] = []

    def write() -> None:
        while (item := full.get()) is not None:
            buf, length, offset = item
            try:
                if not failed:
                    view = memoryview(buf)[: -(-length // _BLOCK) * _BLOCK]
                    done = 0
                    while done < len(view):
                        done += os.pwritev(dst_fd, [view[done:]], offset + done)
            except BaseException as exc:
                failed.append(exc)
            finally:
                free.put(buf)

    writer = threading.Thread(target=write, name="conveyor-write")
    writer.start()
    offset = 0
    try:
        src_fd = os.open(src, os.O_RDONLY)
        try:
            while not failed:
                buf = free.get()
                length = os.preadv(src_fd, [buf], offset)
                if not length:
                    free.put(buf)
                    break
                hasher.update(memoryview(buf)[:length])
                full.put((buf, length, offset))
                offset += length
        finally:
            os.close(src_fd)
    finally:
        full.put(None)
        writer.join()
    if failed:
        raise failed[0]
    if offset != size:
        raise DataError(f"{src} changed while it was being stored ({size} -> {offset} bytes)")
    os.ftruncate(dst_fd, size)  # drop the padding of the last block
    return hasher.hexdigest()


def _kernel_copy_and_hash(
    src: str | os.PathLike[str], dst_fd: int, size: int, *, durable: bool
) -> str:
    """Copy by the kernel, then hash the copy."""
    start_writeback = _sync_file_range() if durable else None
    src_fd = os.open(src, os.O_RDONLY)
    try:
        offset = 0
        while copied := copy_chunk(src_fd, dst_fd):
            if start_writeback is not None:
                start_writeback(dst_fd, offset, copied, _SYNC_FILE_RANGE_WRITE)
            offset += copied
    finally:
        os.close(src_fd)
    return _hash_copy(src, dst_fd, size, offset)


def _hash_copy(src: str | os.PathLike[str], dst_fd: int, size: int, copied: int) -> str:
    """Hash the copy, not the source: a source edited during the copy must not give an object
    whose bytes differ from its name."""
    if copied != size:
        raise DataError(f"{src} changed while it was being stored ({size} -> {copied} bytes)")
    return hash_file(f"/proc/self/fd/{dst_fd}", size)


_FICLONE = 0x40049409


def _clone(src: str | os.PathLike[str], dst_fd: int) -> int | None:
    """Make ``dst_fd`` share the blocks of ``src`` (btrfs, XFS); its size, or None where the
    filesystem cannot (one failed ioctl)."""
    import fcntl

    src_fd = os.open(src, os.O_RDONLY)
    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
    except OSError:
        return None
    finally:
        os.close(src_fd)
    return os.fstat(dst_fd).st_size


def copy_all(src_fd: int, dst_fd: int) -> int:
    """Copy from the current offset of ``src_fd`` to its end; returns the bytes copied."""
    total = 0
    while copied := copy_chunk(src_fd, dst_fd):
        total += copied
    return total


def copy_chunk(src_fd: int, dst_fd: int) -> int:
    """One chunk by ``copy_file_range`` (a reflink where the filesystem can), or by read/write
    where the kernel refuses it (across filesystems on older kernels); 0 at the end."""
    try:
        return os.copy_file_range(src_fd, dst_fd, _CHUNK)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    data = os.read(src_fd, _CHUNK)
    atomic.write_all(dst_fd, data)
    return len(data)
