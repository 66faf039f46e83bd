"""Bounded waits on a PostgreSQL store: a lock another session never releases, a silent server."""

from __future__ import annotations

import os
import subprocess
import time
from urllib.parse import quote

import psycopg
import pytest

from conveyor.tracking.store import STATEMENT_TIMEOUT, SqlStore, _pg_connect_args
from tests.conftest import Project, _libpq, conveyor_process


def test_defaults_are_added_and_the_urls_own_settings_kept() -> None:
    args = _pg_connect_args("postgresql+psycopg://u@h/db")
    assert args["connect_timeout"] == 10
    assert args["options"] == f"-c statement_timeout={STATEMENT_TIMEOUT}"
    assert args["keepalives"] == 1
    own = _pg_connect_args(
        "postgresql+psycopg://u@h/db?connect_timeout=3&options=-c%20search_path%3Dx"
    )
    assert "connect_timeout" not in own  # the URL's 3 s stands
    assert own["options"] == f"-c search_path=x -c statement_timeout={STATEMENT_TIMEOUT}"
    mine = _pg_connect_args("postgresql+psycopg://u@h/db?options=-c%20statement_timeout%3D5")
    assert "options" not in mine


def test_every_session_has_a_statement_timeout(pg_db: str) -> None:
    store = SqlStore(pg_db)
    try:
        sql = "select setting from pg_settings where name = 'statement_timeout'"
        [(value,)] = store.execute(sql, {})
    finally:
        store.close()
    assert int(value) == STATEMENT_TIMEOUT  # milliseconds


def test_a_run_whose_store_is_locked_keeps_its_records_and_succeeds(
    project: Project, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another session holds the runs table forever: the publish gives up, the run does not."""
    SqlStore(pg_db).close()  # the tables exist
    project.write(
        "conveyor.yaml",
        "stages:\n  train:\n    cmd: echo trained > model.txt\n    outs: [model.txt]\n",
    )
    url = f"{pg_db}?options={quote('-c statement_timeout=1000')}"
    with psycopg.connect(_libpq(pg_db)) as holder:
        holder.execute("lock table runs in access exclusive mode")
        start = time.monotonic()
        proc = conveyor_process(
            "run",
            cwd=project.root,
            env={**os.environ, "CONVEYOR_DB": url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - start
        holder.rollback()
    assert proc.returncode == 0, err
    [warning] = err.decode().strip().splitlines()
    assert warning.startswith("warning: the run waits in .conveyor/spool"), warning
    assert "statement timeout" in warning
    assert took < 30
    assert list((project.root / ".conveyor/spool").glob("*.jsonl")), "the records are gone"
    # Once the lock is gone, the next reader applies them.
    monkeypatch.setenv("CONVEYOR_DB", pg_db)
    assert " finished " in project.ok("runs", "list")
    assert not list((project.root / ".conveyor/spool").glob("*.jsonl"))


def test_a_read_that_times_out_is_a_short_error(
    project: Project, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answers the connection, then the query waits on a lock past its timeout."""
    SqlStore(pg_db).close()
    monkeypatch.setenv("CONVEYOR_DB", f"{pg_db}?options={quote('-c statement_timeout=500')}")
    with psycopg.connect(_libpq(pg_db)) as holder:
        holder.execute("lock table runs in access exclusive mode")
        result = project.run("runs", "list")
        holder.rollback()
    assert result.code == 1
    [error, hint] = result.err.strip().splitlines()
    assert error.startswith("error: the metadata store at postgresql+psycopg://"), error
    assert "did not answer: canceling statement due to statement timeout" in error
    assert hint.startswith("  hint: check that the database server is running")
