"""Bringing a store's schema to :data:`conveyor.tracking.store.HEAD` with Alembic.

Run on open when the store's version differs; concurrent openers are serialised (SQLite's
write lock, PostgreSQL's advisory lock), so exactly one of them migrates.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

_LOCK = 7_310_420_001  # the advisory lock id migrations take on PostgreSQL


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("select pg_advisory_xact_lock(:id)"), {"id": _LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
