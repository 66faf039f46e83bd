"""Which metadata store a project uses, and opening it with the spool drained."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conveyor.foundation.config import Config
from conveyor.tracking import spool
from conveyor.tracking.store import SqlStore

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


@contextmanager
def opened(root: Path) -> Iterator[SqlStore]:
    """The project's store, with every pending spool file applied first."""
    store = SqlStore(url_for(root))
    try:
        spool.drain(root, store)
        yield store
    finally:
        store.close()
