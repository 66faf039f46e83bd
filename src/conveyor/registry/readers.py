"""Reading the metadata store without SQLAlchemy, on a connection kept between reads.

A model server polls its environment's deployment record several times a second from every
worker. Importing SQLAlchemy would cost each worker a quarter of a second and its memory, and
opening a connection costs more than the query: about a millisecond for SQLite (the first query
of a connection maps the WAL index and reads the schema), a round trip and a login for
PostgreSQL, against a few hundredths of a millisecond for the query on an open one. So a reader
keeps one connection per process and store URL: the standard library's sqlite3 for an embedded
store, psycopg (the driver SQLAlchemy uses anyway) for PostgreSQL. Both run the plain SQL of
:mod:`conveyor.registry.queries` and :mod:`conveyor.tracking.reads`.

Contract:

- :func:`reader` gives None when the store cannot be read this way (a missing file, a schema
  other than :data:`~conveyor.tracking.reads.HEAD`, a server that does not answer): the caller
  opens the full store, which migrates it or says what is wrong.
- A driver error during a read closes the kept connection and raises :class:`Unreadable`; the
  next :func:`reader` connects again. An SQLite file replaced under a kept connection (a store
  deleted and made again) is noticed by its inode before each read.
- Reads never open a transaction (autocommit), so each sees the latest commit and holds up no
  writer or checkpoint. Threads share a connection; its reads take turns.
- Connections are kept per process: a forked child opens its own, and never uses or closes its
  parent's. Spool files are not applied: they hold runs' records, never the registry's.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.tracking.reads import HEAD, VERSION_TABLE, Execute

__all__ = ["Unreadable", "close_all", "reader"]

_PG_URL = re.compile(r"postgres(?:ql)?(?:\+psycopg)?://")
_SQLITE = "sqlite:///"


class Unreadable(Exception):
    """A kept connection failed mid-read (it is closed now): read through the full store."""


@dataclass
class _Kept:
    conn: Any  # sqlite3.Connection or psycopg.Connection: both have execute() -> cursor
    errors: tuple[type[Exception], ...]  # the driver's
    translate: Callable[[str], str]  # the queries' ``:name`` parameters in the driver's style
    file: tuple[int, int] | None = None  # SQLite: (device, inode) of the file it opened
    lock: threading.Lock = field(default_factory=threading.Lock)


_KEPT: dict[tuple[int, str], _Kept] = {}
_LOCK = threading.Lock()


def reader(url: str) -> Execute | None:
    """An ``execute(sql, params)`` on this process's kept connection to the store at ``url``
    (opened now if need be); None when the store cannot be read without SQLAlchemy."""
    key = (os.getpid(), url)
    with _LOCK:
        kept = _KEPT.get(key)
        if kept is not None and kept.file is not None and _identity(_sqlite_path(url)) != kept.file:
            _close(_KEPT.pop(key))  # deleted or replaced: the kept one reads a ghost
            kept = None
        if kept is None:
            kept = _open(url)
            if kept is None:
                return None
            _KEPT[key] = kept
    live = kept

    def execute(sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        with live.lock:
            try:
                rows: list[Any] = live.conn.execute(live.translate(sql), dict(params)).fetchall()
            except live.errors as exc:
                _forget(key, live)
                raise Unreadable(str(exc)) from exc
        return rows

    return execute


def close_all() -> None:
    """Close this process's kept connections (a server shutting down, a test's teardown)."""
    pid = os.getpid()
    with _LOCK:
        mine = [_KEPT.pop(key) for key in [k for k in _KEPT if k[0] == pid]]
    for kept in mine:
        _close(kept)


def _open(url: str) -> _Kept | None:
    if url.startswith(_SQLITE):
        return _open_sqlite(_sqlite_path(url))
    if _PG_URL.match(url):
        return _open_pg(url)
    return None


def _open_sqlite(path: Path) -> _Kept | None:
    import sqlite3

    file = _identity(path)
    if file is None:
        return None
    # isolation_level None: no transaction is opened for a read and left open between polls.
    conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
    kept = _Kept(conn, (sqlite3.Error,), lambda sql: sql, file)
    return kept if _at_head(kept) else None


def _open_pg(url: str) -> _Kept | None:
    import psycopg

    try:
        conn = psycopg.connect(
            _PG_URL.sub("postgresql://", url, count=1), autocommit=True, **_pg_args(url)
        )
    except psycopg.Error:
        return None
    kept = _Kept(conn, (psycopg.Error,), _pyformat)
    return kept if _at_head(kept) else None


def _at_head(kept: _Kept) -> bool:
    """Whether the store is at the schema the queries are written for (else it is closed)."""
    try:
        row = kept.conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    except kept.errors:
        row = None
    if row is None or row[0] != HEAD:
        _close(kept)
        return False
    return True


def _forget(key: tuple[int, str], kept: _Kept) -> None:
    with _LOCK:
        if _KEPT.get(key) is kept:
            del _KEPT[key]
    _close(kept)


def _close(kept: _Kept) -> None:
    with contextlib.suppress(*kept.errors):  # already broken: nothing left to release
        kept.conn.close()


def _sqlite_path(url: str) -> Path:
    return Path(url[len(_SQLITE) :])


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _pyformat(sql: str) -> str:
    """The shared queries' ``:name`` parameters as psycopg's ``%(name)s``."""
    return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", sql.replace("%", "%%"))


def _pg_args(url: str) -> dict[str, Any]:
    """The bounds on every wait that the full store sets (see
    :func:`conveyor.tracking.store._pg_connect_args`), unless the URL sets its own."""
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(url).query)
    args: dict[str, Any] = {
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }
    if "connect_timeout" not in query:
        args["connect_timeout"] = 10
    options = " ".join(query.get("options", []))
    if "statement_timeout" not in options:
        args["options"] = f"{options} -c statement_timeout=60000".strip()
    return args
