"""Reading an embedded (SQLite) store with the standard library alone.

Commands that only read (``runs list``, ``runs show``, ``diff``) would spend most of their time
importing SQLAlchemy. When the store is SQLite, already at the current schema, and no spool
file waits to be applied, they read through sqlite3 with the very queries of :mod:`reads`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conveyor.tracking import reads


class SqliteReader(reads.Reads):
    """The read half of the store over sqlite3; writing is refused (open the full store)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, timeout=60)

    @classmethod
    def open(cls, path: Path) -> SqliteReader | None:
        """A reader, or None when the full store must be opened (missing, or an old schema)."""
        if not path.exists():
            return None
        reader = cls(path)
        try:
            row = reader.conn.execute("SELECT version_num FROM conveyor_version").fetchone()
        except sqlite3.DatabaseError:
            row = None
        if row is None or row[0] != reads.HEAD:
            reader.close()
            return None
        return reader

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        return self.conn.execute(sql, dict(params)).fetchall()

    def apply(self, name: str, records: Iterable[Mapping[str, Any]]) -> bool:
        raise NotImplementedError("a read-only store: open it with write=True")

    def apply_many(self, batches: Iterable[tuple[str, Iterable[Mapping[str, Any]]]]) -> int:
        raise NotImplementedError("a read-only store: open it with write=True")

    def close(self) -> None:
        self.conn.close()
