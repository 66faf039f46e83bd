"""BLAKE3 content hashes, and the copy-while-hashing that puts a file into the cache.

A hash is 64 lowercase hex digits. Small files are read once into memory, hashed and written
from the same buffer; large files are copied by the kernel (``copy_file_range``) while another
thread hashes the source through ``mmap``, and the copy's writeback is started as it goes so that
the final fsync has little left to wait for.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import threading
from typing import Any

import blake3

from conveyor.foundation.errors import DataError

OID_RE = re.compile(r"^[0-9a-f]{64}$")
SMALL = 4 << 20  # read whole below this size
_CHUNK = 64 << 20
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Any:
    """libc's sync_file_range (start writeback of a range without waiting), or None."""
    import ctypes
    import ctypes.util

    func = getattr(
        ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True), "sync_file_range", None
    )
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return func


def is_oid(text: str) -> bool:
    return bool(OID_RE.match(text))


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
    """Copy ``src`` into the open file ``dst_fd`` and return the hash of ``src``.

    The hash is computed from the source concurrently with the kernel copy; if the source
    changes size while it is copied, the copy is refused.
    """
    result: dict[str, str | BaseException] = {}

    def _hash() -> None:
        try:
            hasher = blake3.blake3()
            hasher.update_mmap(os.fspath(src))
            result["oid"] = hasher.hexdigest()
        except BaseException as exc:
            result["error"] = exc

    start_writeback = _sync_file_range() if durable else None
    worker = threading.Thread(target=_hash, name="conveyor-hash")
    worker.start()
    try:
        src_fd = os.open(src, os.O_RDONLY)
        try:
            offset = 0
            while True:
                copied = copy_chunk(src_fd, dst_fd)
                if not copied:
                    break
                if start_writeback is not None:
                    start_writeback(dst_fd, offset, copied, _SYNC_FILE_RANGE_WRITE)
                offset += copied
        finally:
            os.close(src_fd)
    finally:
        worker.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    if offset != size:
        raise DataError(f"{src} changed while it was being stored ({size} -> {offset} bytes)")
    return str(result["oid"])


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
    view = memoryview(data)
    while view:
        view = view[os.write(dst_fd, view) :]
    return len(data)
