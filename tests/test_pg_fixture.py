"""The PostgreSQL fixtures give a real, working server: ``pg_url`` for the session, ``pg_db`` a
fresh database for each test."""

from __future__ import annotations

import os
import socket

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url


def libpq(url: str) -> str:
    """The SQLAlchemy URL as a libpq connection string, for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_url_is_sqlalchemy_psycopg(pg_url: str) -> None:
    assert make_url(pg_url).drivername == "postgresql+psycopg"


def test_psycopg_select_1(pg_url: str) -> None:
    with psycopg.connect(libpq(pg_url)) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_sqlalchemy_select_1(pg_db: str) -> None:
    engine = sqlalchemy.create_engine(pg_db)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select 1")).scalar_one() == 1
            name = conn.execute(sqlalchemy.text("select current_database()")).scalar_one()
        assert name == make_url(pg_db).database
        assert name.startswith("t_")
    finally:
        engine.dispose()


_earlier: list[str] = []


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_a_fresh_database(pg_db: str, run: int) -> None:
    """Each run finds no table the other made, and the other's database already dropped."""
    engine = sqlalchemy.create_engine(pg_db)
    try:
        with engine.begin() as conn:
            assert not sqlalchemy.inspect(conn).has_table("leftover")
            conn.execute(sqlalchemy.text("create table leftover (run int)"))
            conn.execute(sqlalchemy.text("insert into leftover values (:run)"), {"run": run})
            assert conn.execute(sqlalchemy.text("select run from leftover")).scalar_one() == run
            for name in _earlier:
                gone = conn.execute(
                    sqlalchemy.text("select count(*) from pg_database where datname = :n"),
                    {"n": name},
                ).scalar_one()
                assert gone == 0, f"database {name} of an earlier test was not dropped"
    finally:
        engine.dispose()
    database = make_url(pg_db).database
    assert database is not None
    assert database not in _earlier
    _earlier.append(database)


def test_server_listens_only_on_loopback(pg_url: str) -> None:
    if os.environ.get("CONVEYOR_TEST_PG"):
        pytest.skip("CONVEYOR_TEST_PG points at a server these tests did not start")
    with psycopg.connect(libpq(pg_url)) as conn:
        assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("show fsync").fetchone() == ("off",)
    # Bound to 127.0.0.1 alone, not to every address: another loopback address is refused.
    port = make_url(pg_url).port
    assert port is not None
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(ConnectionRefusedError),
    ):
        sock.settimeout(5)
        sock.connect(("127.0.0.2", port))
