"""Shared fixtures: a fresh project in a temp folder, and the CLI run in-process or as a process."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.cli.main import main

GIT_ENV = {
    "GIT_AUTHOR_NAME": "conveyor tests",
    "GIT_AUTHOR_EMAIL": "tests@conveyor.invalid",
    "GIT_COMMITTER_NAME": "conveyor tests",
    "GIT_COMMITTER_EMAIL": "tests@conveyor.invalid",
}


@dataclass
class Result:
    code: int
    out: str
    err: str


class Project:
    """A conveyor project in a temp folder, driven through the real CLI."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self._capsys = capsys

    def run(self, *args: str) -> Result:
        """Run ``conveyor ARGS`` in-process (fast) from the project's root."""
        self._capsys.readouterr()
        old = os.getcwd()
        os.chdir(self.root)
        try:
            code = main(list(args))
        finally:
            os.chdir(old)
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.code == 0, f"conveyor {' '.join(args)} -> {result.code}\n{result.err}"
        return result.out

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        proc = subprocess.run(
            ["git", *args], cwd=self.root, env=env, capture_output=True, text=True, check=True
        )
        return proc.stdout

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        # Older than the memo's racy window, as files that were not just written are.
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
        return path


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Project]:
    root = tmp_path / "proj"
    root.mkdir()
    proj = Project(root, capsys)
    proj.git("init", "-q", "-b", "main")
    proj.ok("init")
    yield proj


def conveyor_process(*args: str, cwd: Path, **kw: object) -> subprocess.Popen[bytes]:
    """Start ``conveyor`` as a real process (for kill and concurrency tests)."""
    code = "import sys; from conveyor.cli.main import run; sys.argv[0] = 'conveyor'; run()"
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", code, *args], cwd=cwd, **kw
    )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) of a real PostgreSQL database.

    $CONVEYOR_TEST_PG if set, else a throwaway cluster (tests/pg.py) for the whole session. If
    PostgreSQL can't be had, the tests that use it fail with the reason: they never skip.
    """
    try:
        from tests import pg
    except ImportError as exc:
        pytest.fail(f"PostgreSQL tests need psycopg[binary] and sqlalchemy: {exc}", pytrace=False)
    env = os.environ.get("CONVEYOR_TEST_PG")
    if env:
        problem = _pg_unreachable(env)
        if problem:
            from sqlalchemy.engine import make_url

            shown = make_url(env).render_as_string(hide_password=True)
            pytest.fail(f"CONVEYOR_TEST_PG={shown}: {problem}", pytrace=False)
        yield env
        return
    cluster = None
    try:
        cluster = pg.start_cluster(pg.default_base())
    except pg.PostgresUnavailable as exc:
        problem = str(exc)
    if cluster is None:
        pytest.fail(f"PostgreSQL could not be started: {problem}", pytrace=False)
    try:
        yield cluster.url
    finally:
        cluster.stop()


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as a libpq connection string (no "+psycopg"), for psycopg."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_unreachable(url: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(_libpq(url), connect_timeout=10) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        return f"cannot connect: {exc}"
    return None


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """A SQLAlchemy URL of a new, empty database ``t_<hex>`` on pg_url's server, dropped after."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    admin = _libpq(pg_url)
    name = f"t_{secrets.token_hex(8)}"
    problem = None
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        problem = str(exc)
    if problem is not None:
        where = url.render_as_string(hide_password=True)
        pytest.fail(f"could not create a test database on {where}: {problem}", pytrace=False)
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))
