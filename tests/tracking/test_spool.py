"""The spool: records a store refuses are set aside; a store that is away keeps them pending."""

from __future__ import annotations

import pytest

import conveyor
from conveyor.foundation.errors import ConveyorError
from conveyor.tracking import spool
from conveyor.tracking.db import opened
from tests.conftest import Project


def test_a_spool_file_the_store_refuses_is_set_aside(in_project: Project) -> None:
    with conveyor.start_run(name="good") as run:
        conveyor.log_metric("x", 1.0)
    spool.write(in_project.root, [{"t": "mystery", "run": "r-bad", "ts": 1.0}])
    with (
        pytest.warns(RuntimeWarning, match="moved to spool/rejected"),
        opened(in_project.root) as store,
    ):
        assert [r["id"] for r in store.runs()] == [run.id]
    assert spool.pending(in_project.root) == []
    assert len(list((in_project.root / ".conveyor" / "spool" / "rejected").iterdir())) == 1


def test_an_unreachable_store_keeps_the_spool(in_project: Project, pg_url: str, pg_db: str) -> None:
    """A database that goes away mid-drain is no reason to reject records (real PostgreSQL)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from conveyor.tracking.store import SqlStore
    from tests.conftest import _libpq

    store = SqlStore(pg_db)
    name = make_url(pg_db).database
    spool.write(in_project.root, [{"t": "tags", "run": "r-1", "tags": {"a": "b"}, "ts": 1.0}])
    with psycopg.connect(_libpq(pg_url), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            with pytest.raises(ConveyorError, match="cannot take the pending records"):
                spool.drain(in_project.root, store)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            store.close()
    assert len(spool.pending(in_project.root)) == 1
    assert not (in_project.root / ".conveyor" / "spool" / "rejected").exists()
