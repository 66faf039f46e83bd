"""Which metadata store a project uses, and opening it with the spool drained."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from conveyor.foundation.config import Config
from conveyor.tracking import spool

if TYPE_CHECKING:
    from conveyor.tracking.store import SqlStore, Store

ENV = "CONVEYOR_DB"


def url_for(root: Path) -> str:
    """``CONVEYOR_DB``, else ``db.url`` in the config, else SQLite in ``.conveyor/``."""
    url = os.environ.get(ENV)
    if url:
        return url
    configured = Config(root / ".conveyor").get("db.url")
    if configured:
        return str(configured)
    return f"sqlite:///{root / '.conveyor' / 'conveyor.db'}"


def exists(root: Path) -> bool:
    """Whether the project has a store yet (a server-backed one is assumed to exist)."""
    url = url_for(root)
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).exists() or bool(spool.pending(root))
    return True


@overload
def opened(root: Path, *, write: Literal[True] = True) -> AbstractContextManager[SqlStore]: ...


@overload
def opened(root: Path, *, write: bool) -> AbstractContextManager[Store]: ...


def opened(root: Path, *, write: bool = True) -> AbstractContextManager[Store]:
    """The project's store, with every pending spool file applied first.

    With ``write=False`` an embedded store with nothing pending is read through sqlite3 (see
    :mod:`conveyor.tracking.fast`); anything else opens the full store, a
    :class:`~conveyor.tracking.store.SqlStore` (what writing needs, the registry included).
    """
    return _opened(root, write=write)


@contextmanager
def _opened(root: Path, *, write: bool) -> Iterator[Store]:
    url = url_for(root)
    store: Store | None = None
    if not write and url.startswith("sqlite:///") and not spool.pending(root):
        from conveyor.tracking.fast import SqliteReader

        store = SqliteReader.open(Path(url[len("sqlite:///") :]))
    if store is None:
        from conveyor.tracking.store import SqlStore

        store = SqlStore(url)
        try:
            spool.drain(root, store)
        except BaseException:
            store.close()
            raise
    try:
        yield store
    finally:
        store.close()
