"""Writes that either happen whole or not at all: temp file, fsync, rename."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_libc: Any = None


def libc() -> Any:
    """The C library's functions (``syncfs``, ``prctl``...) through ctypes.

    ``CDLL(None)`` is the running program, which links the C library: no search for the
    library's file (``ctypes.util.find_library`` runs ``ldconfig``, which costs milliseconds).
    """
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def fsync_dir(path: Path) -> None:
    """Persist a directory entry (a rename or a create) inside ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(path: Path, *, strict: bool = False) -> None:
    """Flush every dirty page of the filesystem holding ``path`` with one call.

    Used to make a batch of object files durable at once, where an fsync per file would cost
    a disk round-trip each (the same idea as git's ``core.fsyncMethod=batch``).
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc().syncfs(fd) != 0:  # pragma: no cover - only on exotic filesystems
            if strict:  # the caller must know: a write-back error, or no syncfs here
                import ctypes

                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), str(path))
            os.sync()
    finally:
        os.close(fd)


def write_bytes(
    path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True, parents: bool = False
) -> None:
    """Replace ``path`` with ``data`` atomically (and durably unless ``durable`` is False).

    Not durable suits caches that are rebuilt when lost: the rename still makes the write
    all-or-nothing, but a power cut may undo it.
    """
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_text(
    path: Path, text: str, *, mode: int = 0o644, durable: bool = True, parents: bool = False
) -> None:
    write_bytes(path, text.encode(), mode=mode, durable=durable, parents=parents)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``: ``os.write`` may write less than it is given (a pipe, a
    signal, a nearly full disk) and says how much it took."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
