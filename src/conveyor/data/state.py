"""The state memo: (path, inode, mtime_ns, size) -> hash, so unchanged files are never re-read.

Two shortcuts sit beside the per-file rows, in a small JSON file next to the database
(``state.db.dirs``) so that an unchanged folder is recognised without opening SQLite at all.
``dirs`` maps a folder to the digest of all its files' stat results and the tree oid they had, so
an unchanged folder costs one ``stat`` per file and no lookups. ``complete`` remembers trees
whose every object was seen in the cache, valid while the cache's generation (bumped whenever an
object is removed) is unchanged. Two commands updating the file at once may lose one's entry:
that only costs the next command a lookup.

A row is trusted only when the file's inode, mtime and size all still match. Files modified
within :data:`RACY_NS` of being hashed are not memoised, since a second write in the same
timestamp tick would leave mtime unchanged (git's "racy clean" problem). Losing the memo only
costs a re-hash, so it is written with ``synchronous=NORMAL``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from conveyor.foundation import atomic
from conveyor.foundation.errors import DataError

if TYPE_CHECKING:
    import sqlite3

RACY_NS = 50_000_000
_KEEP_COMPLETE = 1000  # trees remembered as complete, newest first

Stat = tuple[int, int, int]  # inode, mtime_ns, size


def stat_key(st: os.stat_result) -> Stat:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class StateMemo:
    """Memo rows keyed by the path relative to the project's root."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._side = path.with_name(path.name + ".dirs")

    @cached_property
    def _db(self) -> sqlite3.Connection:
        """The per-file rows, opened when first needed (an unchanged folder never needs them)."""
        import sqlite3

        try:
            return self._open(self.path)
        except sqlite3.Error as exc:
            raise DataError(
                f"cannot open the state memo {self.path}: {exc}",
                hint="check the free space of the disk; deleting the file only costs a re-hash",
            ) from exc

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        import sqlite3

        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(
            "CREATE TABLE IF NOT EXISTS state (path TEXT PRIMARY KEY, inode INTEGER,"
            " mtime_ns INTEGER, size INTEGER, hash TEXT) WITHOUT ROWID;"
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
        import sqlite3

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
        row = self._shortcuts["dirs"].get(rel)
        if isinstance(row, list) and len(row) == 2 and row[0] == digest:
            return str(row[1])
        return None

    def save_dir(self, rel: str, digest: str, oid: str) -> None:
        self._update("dirs", rel, [digest, oid])

    # -- trees known to have every object in the cache, per cache generation ---------------
    def is_complete(self, oid: str, generation: str | None) -> bool:
        return generation is not None and self._shortcuts["complete"].get(oid) == generation

    def mark_complete(self, oid: str, generation: str | None) -> None:
        if generation is not None:
            self._update("complete", oid, generation)

    @cached_property
    def _shortcuts(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._side.read_bytes())
            if isinstance(data.get("dirs"), dict) and isinstance(data.get("complete"), dict):
                return {"dirs": data["dirs"], "complete": data["complete"]}
        except (OSError, ValueError, AttributeError):
            pass  # none yet, or damaged: it is only a shortcut
        return {"dirs": {}, "complete": {}}

    def _update(self, table: str, key: str, value: Any) -> None:
        self.__dict__.pop("_shortcuts", None)  # read again: another command may have written
        data = self._shortcuts
        data[table].pop(key, None)
        data[table][key] = value  # newest last
        if table == "complete":  # marks of an older generation can never be true again
            kept = [(k, g) for k, g in data["complete"].items() if g == value]
            data["complete"] = dict(kept[-_KEEP_COMPLETE:])
        try:
            atomic.write_bytes(self._side, json.dumps(data).encode(), durable=False)
        except OSError as exc:
            raise DataError(
                f"cannot write the state memo {self._side}: {exc.strerror or exc}",
                hint="check the free space of the disk, then run the command again",
            ) from exc

    def close(self) -> None:
        if "_db" in self.__dict__:
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
