"""The moving parts of push and pull: a bounded thread pool, temp folders, and landings.

A download goes to a temp file under the project's ``tmp/`` folder (a :class:`Scratch`), is
hashed, and only if the bytes hash to the oid asked for is it kept. Kept files are put into the
cache in groups by a :class:`Landing`: one ``syncfs`` for the group, then one rename per object,
so a file under ``objects/`` always holds exactly the bytes its name says, whenever the process
is killed. A group is at most a second of work, so an interrupted pull keeps nearly everything it
fetched. A folder remote lands uploads the same way (:mod:`conveyor.data.remote_local`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from conveyor.data.objects import ObjectDB
from conveyor.data.remote import Fetched, MissingObject, Remote
from conveyor.foundation import atomic

T = TypeVar("T")
R = TypeVar("R")


def parallel(
    items: Iterable[T],
    work: Callable[[T], R],
    jobs: int,
    done: Callable[[T, R], None],
    *,
    run: int = 1,
) -> None:
    """Run ``work(item)`` on up to ``jobs`` threads; ``done(item, result)`` runs on this thread.

    Each thread takes ``run`` consecutive items at a time: for quick work (a local copy) that
    spreads a thread pool's cost per task over many items (see :func:`run_length`). At most
    ``2 * jobs`` runs are in flight, so millions of objects cost no more memory than a few. The
    first exception stops the rest: nothing new starts, work already running finishes, and the
    exception propagates.
    """
    limit = max(1, jobs) * 2
    pool = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="conveyor-transfer")
    running: dict[Future[list[R]], list[T]] = {}

    def work_run(chunk: list[T]) -> list[R]:
        return [work(item) for item in chunk]

    try:
        for chunk in _runs(items, max(1, run)):
            if len(running) >= limit:
                _finish_some(running, done)
            running[pool.submit(work_run, chunk)] = chunk
        while running:
            _finish_some(running, done)
    finally:
        for future in running:
            future.cancel()
        pool.shutdown(wait=True)


def run_length(count: int, jobs: int, most: int = 64) -> int:
    """Items per task for :func:`parallel`: up to ``most``, but several tasks for each thread.

    >>> run_length(20_000, 4), run_length(100, 4), run_length(3, 4)
    (64, 3, 1)
    """
    return max(1, min(most, count // (max(1, jobs) * 8)))


def _runs(items: Iterable[T], run: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= run:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _finish_some(running: dict[Future[list[R]], list[T]], done: Callable[[T, R], None]) -> None:
    finished, _ = wait(running, return_when=FIRST_COMPLETED)
    for future in finished:
        chunk = running.pop(future)
        for item, result in zip(chunk, future.result(), strict=True):
            done(item, result)


class Scratch:
    """Temp files under ``folder``, in one subfolder per thread (or process) that writes them.

    Creating files is most of the cost of moving many small ones, and a folder takes one new
    file at a time (the kernel locks it), so writers sharing one folder mostly wait for each
    other. Subfolders are named ``PREFIX.SOMETHING``; start ``prefix`` with the process id where
    ``ObjectDB.clean_tmp`` should remove what a killed process left. Leaving the block removes
    the subfolders: empty ones after a success, with whatever is in them after an error.
    """

    def __init__(self, folder: str | os.PathLike[str], prefix: str) -> None:
        self.folder = os.fspath(folder)
        self.prefix = prefix
        self._local = threading.local()
        self._names = itertools.count()

    def path(self) -> str:
        """A name for a new temp file, in the calling thread's subfolder."""
        folder: str | None = getattr(self._local, "folder", None)
        if folder is None:
            folder = self.subfolder(f"t{threading.get_ident()}")
            self._local.folder = folder
        return f"{folder}/{next(self._names)}"

    def subfolder(self, name: str) -> str:
        """Create (if need be) and return the subfolder ``PREFIX.NAME``."""
        folder = f"{self.folder}/{self.prefix}.{name}"
        os.makedirs(folder, exist_ok=True)
        return folder

    def __enter__(self) -> Scratch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder):
                if not entry.name.startswith(f"{self.prefix}."):
                    continue
                if exc_type is None:
                    with contextlib.suppress(OSError):
                        os.rmdir(entry.path)
                else:
                    shutil.rmtree(entry.path, ignore_errors=True)


def download_each(
    remote: Remote,
    oids: Sequence[str],
    scratch: Scratch,
    *,
    jobs: int,
    done: Callable[[str, Fetched], None],
) -> None:
    """``Remote.download_many`` by ``remote.download`` on up to ``jobs`` threads."""
    parallel(
        oids,
        lambda oid: fetch_one(remote, oid, scratch.path()),
        jobs,
        done,
        run=run_length(len(oids), jobs),
    )


def fetch_one(remote: Remote, oid: str, path: str) -> Fetched:
    """Download ``oid`` to the new file ``path``; nothing is left there if it fails."""
    try:
        digest = remote.download(oid, path)
        return Fetched(path, digest, os.stat(path).st_size)
    except MissingObject:
        _unlink(path)
        return Fetched(None)
    except BaseException:
        _unlink(path)
        raise


class Landing:
    """Complete temp files put in place together: one flush to disk per group.

    ``place(tmp, oid)`` renames one temp file to its final name; ``folder`` is on the same
    filesystem. A flush is one ``syncfs`` (so that no rename can outlive its file's bytes in a
    crash), the renames, and one more ``syncfs`` (so that what was reported landed stays);
    ``before(oids)`` and ``after()`` replace the two flushes where the caller makes objects
    durable its own way (the cache's journal); ``landed(oid)`` is then called for each. A group
    closes after ``group`` files or ``seconds``.
    Used from one thread. Leaving the block puts every file added in place, even on an error
    (each is complete); temp files never added are their writer's to remove.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        place: Callable[[str, str], None],
        *,
        durable: bool = True,
        before: Callable[[list[str]], None] | None = None,
        after: Callable[[], None] | None = None,
        landed: Callable[[str], None] | None = None,
        group: int = 100_000,
        seconds: float = 1.0,
    ) -> None:
        self.folder = folder
        self.place = place
        self.durable = durable
        self.before = before
        self.after = after
        self.landed = landed
        self.group = group
        self.seconds = seconds
        self._pending: list[tuple[str, str]] = []
        self._since = time.monotonic()

    @classmethod
    def into(cls, odb: ObjectDB, *, group: int = 100_000, seconds: float = 1.0) -> Landing:
        """A landing for verified downloads into the cache ``odb``."""
        odb.ensure_tmp()
        return cls(
            odb.tmp,
            odb.place,
            before=odb.will_name,
            after=odb.named,
            group=group,
            seconds=seconds,
        )

    def add(self, tmp: str, oid: str) -> None:
        self._pending.append((tmp, oid))
        if len(self._pending) >= self.group or time.monotonic() - self._since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        self._since = time.monotonic()
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if self.before is not None:
            self.before([oid for _, oid in pending])
        elif self.durable:
            atomic.syncfs(Path(self.folder))
        for tmp, oid in pending:
            self.place(tmp, oid)
        if self.after is not None:
            self.after()
        elif self.durable:
            atomic.syncfs(Path(self.folder))
        if self.landed is not None:
            for _, oid in pending:
                self.landed(oid)

    def __enter__(self) -> Landing:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.flush()


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
