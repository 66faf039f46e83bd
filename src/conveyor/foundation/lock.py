"""One writer at a time per project: an advisory lock on ``.conveyor/lock``.

The kernel drops the lock when its holder dies (even by SIGKILL), so a crashed command never
leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from conveyor.foundation.errors import LockError


class ProjectLock:
    """Exclusive lock; waits up to ``timeout`` seconds, then fails naming the holder."""

    def __init__(self, path: Path, *, timeout: float = 60.0, command: str = "conveyor") -> None:
        self.path = path
        self.timeout = timeout
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise LockError(
                        f"another conveyor process ({holder}) is working in this project "
                        f"and held {self.path} for {self.timeout:.0f} s",
                        hint="wait for it to finish, or raise CONVEYOR_LOCK_TIMEOUT",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {self.command}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "unknown pid"


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (temp files are named after their writer's pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True
