"""The metadata store: one small Protocol, one SQLAlchemy Core implementation for SQLite and
PostgreSQL.

Contract (every implementation passes ``tests/tracking/test_store_contract.py``):

- Writes arrive only as batches of records (the spool's lines, see :mod:`spool`) through
  :meth:`Store.apply`, each batch in one transaction, applied at most once by its name: a batch
  applied again (a crash between the commit and removing its spool file) changes nothing.
- Records may arrive for a run the store has not seen yet (a stage's metrics before the
  pipeline's run record): the run is created as ``running`` and completed by later records.
- Several processes may apply and read at once. SQLite runs in WAL mode and every transaction
  takes the write lock up front (``BEGIN IMMEDIATE``) with a 60 s busy timeout, so writers queue
  instead of failing with "database is locked"; PostgreSQL serialises upserts by primary key.
- Reads return plain dicts or frozen records (see :meth:`SqlStore.runs`,
  :meth:`SqlStore.run_record`); nothing returned aliases the store.
- Nothing waits forever for a database server: connecting gives up after ``connect_timeout``
  (10 s) and a statement after ``statement_timeout`` (60 s), both overridable in the URL
  (``?connect_timeout=3&options=-c statement_timeout=5000``); a server gone silent is noticed
  by TCP keepalives. Either way the store raises a :class:`ConveyorError` naming the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from conveyor.foundation.errors import ConfigError, ConveyorError, TrackingError
from conveyor.foundation.redact import mask_urls
from conveyor.tracking import reads, writes
from conveyor.tracking import tables as t
from conveyor.tracking.reads import HEAD, Execute, RunNotFound, RunRecord

__all__ = [
    "HEAD",
    "RunNotFound",
    "SqlStore",
    "Store",
    "engine_url",
    "executor",
]  # the newest migration; a store at another version is upgraded on open

Record = Mapping[str, Any]


class Store(Protocol):
    def apply(self, name: str, records: Iterable[Record]) -> bool: ...

    def apply_many(self, batches: Iterable[tuple[str, Iterable[Record]]]) -> int: ...

    def runs(self, *, deleted: bool = False) -> list[dict[str, Any]]: ...

    def run(self, ref: str) -> dict[str, Any]: ...

    def run_record(self, ref: str) -> RunRecord: ...

    def execute(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Run one read (plain SQL that SQLite and PostgreSQL share, ``:name`` parameters)."""
        ...

    def history(self, run_id: str, key: str) -> list[tuple[int | None, float, float]]: ...

    def artifact_refs(self) -> dict[str, set[str]]: ...

    def close(self) -> None: ...


def engine_url(url: str) -> str:
    """A user's database URL as SQLAlchemy needs it (psycopg 3 for PostgreSQL)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    if not url.startswith(("sqlite:", "postgresql+")):
        raise ConfigError(
            f"database URL {mask_urls(url)!r} is neither sqlite:///PATH nor postgresql://...",
            hint="set CONVEYOR_DB (or `conveyor config --local db.url ...`) to a supported URL",
        )
    return url


class SqlStore(reads.Reads):
    """The store on SQLite (embedded default) or PostgreSQL (a team's shared server)."""

    def __init__(self, url: str) -> None:
        self.url = engine_url(url)
        self.engine = _engine(self.url)
        self.dialect = self.engine.dialect.name
        try:
            self._migrate()
        except ConveyorError:
            self.engine.dispose()
            raise
        except sa.exc.OperationalError as exc:
            self.engine.dispose()
            raise TrackingError(
                f"cannot open the metadata store at {_safe(self.url)}: {_reason(exc)}",
                hint="check CONVEYOR_DB / db.url, and that the database server is running",
            ) from exc

    def _migrate(self) -> None:
        with self.engine.connect() as conn:
            try:
                version = conn.execute(sa.text("select version_num from conveyor_version")).scalar()
            except sa.exc.DatabaseError:
                conn.rollback()
                version = None
        if version != HEAD:
            from conveyor.foundation.extras import check

            # A serving install reads a store at the current schema and never migrates one.
            where = "has no conveyor schema yet" if version is None else f"is at {version}"
            check(
                "train",
                modules=("alembic",),
                purpose=f"the metadata store at {_safe(self.url)} {where} (this conveyor "
                f"reads {HEAD}): migrating it",
                hint="run any `conveyor` command once from a full install (pip install "
                "'conveyor[all]') to migrate it; a serving install then reads it as it is",
            )
            from conveyor.tracking import migrate

            migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- writing ---------------------------------------------------------------------------

    def apply(self, name: str, records: Iterable[Record]) -> bool:
        """Apply one batch in one transaction; False if it was applied before."""
        return self.apply_many([(name, records)]) == 1

    def apply_many(self, batches: Iterable[tuple[str, Iterable[Record]]]) -> int:
        """Apply several batches in one transaction (each at most once); how many were new."""
        batches = [(name, list(records)) for name, records in batches]
        if not batches:
            return 0
        names = [name for name, _ in batches]
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Two drains of one spool serialise here, so neither applies a batch twice.
                for name in sorted(names):
                    conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:n))"), {"n": name})
            seen = set(
                conn.execute(sa.select(t.applied.c.name).where(t.applied.c.name.in_(names)))
                .scalars()
                .all()
            )
            new = [(n, r) for n, r in batches if n not in seen]
            if new:
                writes.write(conn, writes.fold_all(r for _, r in new), self._insert)
                now = time.time()
                conn.execute(t.applied.insert(), [{"name": n, "applied": now} for n, _ in new])
        return len(new)

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    # -- reading: the queries live in reads.py, shared with the sqlite3 fast path -----------

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(sa.text(sql), dict(params)))
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise TrackingError(
                f"the metadata store at {_safe(self.url)} did not answer: {_reason(exc)}",
                hint="check that the database server is running and reachable, then try again",
            ) from exc


def executor(conn: sa.Connection) -> Execute:
    """The plain-SQL reads of :mod:`reads` run on ``conn``, inside its transaction: what a
    write checks before it writes sees what the same transaction wrote."""

    def execute(sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        return list(conn.execute(sa.text(sql), dict(params)))

    return execute


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _reason(exc: sa.exc.DBAPIError) -> str:
    """The driver's message on one line (libpq's run over several)."""
    return " ".join(str(exc.orig).split())


CONNECT_TIMEOUT = 10  # seconds
STATEMENT_TIMEOUT = 60_000  # milliseconds


def _pg_connect_args(url: str) -> dict[str, Any]:
    """libpq settings that bound every wait on the server, unless the URL sets its own."""
    query = sa.engine.make_url(url).query
    args: dict[str, Any] = {
        # A dead or silent server: the kernel gives up on it after about 30 s without answers.
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }
    if "connect_timeout" not in query:
        args["connect_timeout"] = CONNECT_TIMEOUT
    options = query.get("options", "")
    if not isinstance(options, str):
        options = " ".join(options)
    if "statement_timeout" not in options:
        # Also ends a wait for a lock that another (hung) session holds.
        args["options"] = f"{options} -c statement_timeout={STATEMENT_TIMEOUT}".strip()
    return args


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun below, not by the driver
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before its spool files are deleted (NORMAL could lose
            # the last commits to a power cut, and the spool would no longer hold them).
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # Take the write lock at the start: a deferred transaction that must upgrade its
            # lock later fails at once with "database is locked" instead of waiting.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args=_pg_connect_args(url))
