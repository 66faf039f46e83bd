"""The state memo: (path, inode, mtime_ns, size) -> hash, so unchanged files are never re-read.

Two shortcuts sit beside the per-file rows. ``dirs`` maps a folder to the digest of all its
files' stat results and the tree oid they had, so an unchanged folder costs one ``stat`` per file
and no lookups. ``complete`` remembers trees whose every object was seen in the cache, valid
while the cache's generation (bumped whenever an object is removed) is unchanged.

A row is trusted only when the file's inode, mtime and size all still match. Files modified
within :data:`RACY_NS` of being hashed are not memoised, since a second write in the same
timestamp tick would leave mtime unchanged (git's "racy clean" problem). Losing the memo only
costs a re-hash, so it is written with ``synchronous=NORMAL``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from conveyor.foundation.errors import DataError

RACY_NS = 50_000_000

Stat = tuple[int, int, int]  # inode, mtime_ns, size


def stat_key(st: os.stat_result) -> Stat:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class StateMemo:
    """Memo rows keyed by the path relative to the project's root."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = self._open(path)
        except sqlite3.Error as exc:
            raise DataError(
                f"cannot open the state memo {path}: {exc}",
                hint="check the free space of the disk; deleting the file only costs a re-hash",
            ) from exc

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(
            "CREATE TABLE IF NOT EXISTS state (path TEXT PRIMARY KEY, inode INTEGER,"
            " mtime_ns INTEGER, size INTEGER, hash TEXT) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS dirs (path TEXT PRIMARY KEY, digest TEXT, oid TEXT)"
            " WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS complete (oid TEXT PRIMARY KEY, generation TEXT)"
            " WITHOUT ROWID;"
        )
        return db

    def get(self, rel: str, st: os.stat_result) -> str | None:
        row = self._db.execute(
            "SELECT inode, mtime_ns, size, hash FROM state WHERE path = ?", (rel,)
        ).fetchone()
        if row is not None and tuple(row[:3]) == stat_key(st):
            return str(row[3])
        return None

    def under(self, prefix: str) -> dict[str, tuple[Stat, str]]:
        """Every row whose path lies under the folder ``prefix`` (relative, no trailing /)."""
        low, high = prefix + "/", prefix + "0"  # "0" sorts right after "/"
        rows = self._db.execute(
            "SELECT path, inode, mtime_ns, size, hash FROM state WHERE path >= ? AND path < ?",
            (low, high),
        )
        return {path: ((ino, mt, size), digest) for path, ino, mt, size, digest in rows}

    def save(self, rows: Iterable[tuple[str, Stat, str]], *, trusted: bool = False) -> None:
        """Record hashes; unless ``trusted``, skip files modified too recently to be sure."""
        horizon = time.time_ns() - RACY_NS
        batch = [
            (rel, st[0], st[1], st[2], digest)
            for rel, st, digest in rows
            if trusted or st[1] < horizon
        ]
        if not batch:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)", batch)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise DataError(
                f"cannot write the state memo {self.path}: {exc}",
                hint="check the free space of the disk, then run the command again",
            ) from exc

    # -- folders: the digest of every file's stat -> the folder's tree oid -------------------
    def get_dir(self, rel: str, digest: str) -> str | None:
        row = self._db.execute("SELECT digest, oid FROM dirs WHERE path = ?", (rel,)).fetchone()
        return str(row[1]) if row is not None and row[0] == digest else None

    def save_dir(self, rel: str, digest: str, oid: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO dirs VALUES (?, ?, ?)", (rel, digest, oid))

    # -- trees known to have every object in the cache, per cache generation ---------------
    def is_complete(self, oid: str, generation: str | None) -> bool:
        if generation is None:
            return False
        row = self._db.execute("SELECT generation FROM complete WHERE oid = ?", (oid,)).fetchone()
        return row is not None and row[0] == generation

    def mark_complete(self, oid: str, generation: str | None) -> None:
        if generation is not None:
            self._db.execute("INSERT OR REPLACE INTO complete VALUES (?, ?)", (oid, generation))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateMemo:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
