"""The moving parts of push and pull: a bounded thread pool, and verified downloads into the cache.

A download goes to a temp file under the project's ``tmp/`` folder, is hashed, and only if the
bytes hash to the oid asked for is it kept. Kept files are put into the cache in groups by a
:class:`Landing`: one ``syncfs`` for the group, then one rename per object, so a file under
``objects/`` always holds exactly the bytes its name says, whenever the process is killed. A
group is at most a second of work, so an interrupted pull keeps nearly everything it fetched.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from conveyor.data import hashing
from conveyor.data.objects import ObjectDB
from conveyor.data.remote import MissingObject, Remote
from conveyor.foundation import atomic

T = TypeVar("T")
R = TypeVar("R")


def parallel(
    items: Iterable[T], work: Callable[[T], R], jobs: int, done: Callable[[T, R], None]
) -> None:
    """Run ``work(item)`` on up to ``jobs`` threads; ``done(item, result)`` runs on this thread.

    At most ``2 * jobs`` items are in flight, so millions of objects cost no more memory than a
    few. The first exception stops the rest: nothing new starts, work already running finishes,
    and the exception propagates.
    """
    limit = max(1, jobs) * 2
    pool = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="conveyor-transfer")
    running: dict[Future[R], T] = {}
    try:
        for item in items:
            if len(running) >= limit:
                _finish_some(running, done)
            running[pool.submit(work, item)] = item
        while running:
            _finish_some(running, done)
    finally:
        for future in running:
            future.cancel()
        pool.shutdown(wait=True)


def _finish_some(running: dict[Future[R], T], done: Callable[[T, R], None]) -> None:
    finished, _ = wait(running, return_when=FIRST_COMPLETED)
    for future in finished:
        item = running.pop(future)
        done(item, future.result())


@dataclass(frozen=True)
class Arrived:
    """One download: a verified temp file, or why there is none."""

    oid: str
    tmp: str | None = None
    size: int = 0
    missing: bool = False
    actual: str | None = None  # what the remote's bytes hash to, when they are corrupt


def download_verified(remote: Remote, odb: ObjectDB, oid: str) -> Arrived:
    """Download ``oid`` to a temp file and keep it only if its bytes hash to ``oid``."""
    tmp = odb.temp_path()
    try:
        remote.download(oid, tmp)
        size = os.stat(tmp).st_size
        actual = hashing.hash_file(tmp, size)
    except MissingObject:
        _unlink(tmp)
        return Arrived(oid, missing=True)
    except BaseException:
        _unlink(tmp)
        raise
    if actual != oid:
        _unlink(tmp)
        return Arrived(oid, actual=actual)
    os.chmod(tmp, 0o444)
    return Arrived(oid, tmp, size)


class Landing:
    """Verified temp files put into the cache together: one flush to disk per group.

    Used from one thread. Leaving the block puts every file added in place, even on an error
    (they are verified); temp files never added are removed by ``ObjectDB.clean_tmp``.
    """

    def __init__(self, odb: ObjectDB, *, group: int = 256, seconds: float = 1.0) -> None:
        self.odb = odb
        self.group = group
        self.seconds = seconds
        self._pending: list[tuple[str, str]] = []
        self._shards: set[str] = set()
        self._since = time.monotonic()
        odb.tmp.mkdir(parents=True, exist_ok=True)

    def add(self, tmp: str, oid: str) -> None:
        self._pending.append((tmp, oid))
        if len(self._pending) >= self.group or time.monotonic() - self._since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        self._since = time.monotonic()
        if not self._pending:
            return
        if self.odb.durable:
            atomic.syncfs(self.odb.tmp)
        for tmp, oid in self._pending:
            target = self.odb.path(oid)
            if oid[:2] not in self._shards:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._shards.add(oid[:2])
            os.replace(tmp, target)
        if self.odb.durable:
            atomic.syncfs(self.odb.root)
        self._pending.clear()

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
