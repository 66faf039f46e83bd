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
- Reads return plain dicts (see :meth:`SqlStore.runs`); nothing returned aliases the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import sqlalchemy as sa

from conveyor.foundation.errors import ConfigError, ConveyorError
from conveyor.tracking import tables as t

HEAD = "0001"  # the newest migration; a store at another version is upgraded on open

Record = Mapping[str, Any]


class Store(Protocol):
    def apply(self, name: str, records: Iterable[Record]) -> bool: ...

    def runs(self, *, deleted: bool = False) -> list[dict[str, Any]]: ...

    def run(self, ref: str) -> dict[str, Any]: ...

    def history(self, run_id: str, key: str) -> list[tuple[int | None, float, float]]: ...

    def artifact_refs(self) -> dict[str, set[str]]: ...

    def close(self) -> None: ...


class RunNotFound(ConveyorError):
    exit_code = 2


def engine_url(url: str) -> str:
    """A user's database URL as SQLAlchemy needs it (psycopg 3 for PostgreSQL)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    if not url.startswith(("sqlite:", "postgresql+")):
        raise ConfigError(
            f"database URL {url!r} is neither sqlite:///PATH nor postgresql://...",
            hint="set CONVEYOR_DB (or `conveyor config db.url ...`) to a supported URL",
        )
    return url


class SqlStore:
    """The store on SQLite (embedded default) or PostgreSQL (a team's shared server)."""

    def __init__(self, url: str) -> None:
        self.url = engine_url(url)
        self.engine = _engine(self.url)
        self.dialect = self.engine.dialect.name
        try:
            self._migrate()
        except sa.exc.OperationalError as exc:
            self.engine.dispose()
            raise ConveyorError(
                f"cannot open the metadata store at {_safe(self.url)}: {exc.orig}",
                hint="check CONVEYOR_DB / db.url, and that the database server is running",
            ) from exc

    def _migrate(self) -> None:
        with self.engine.connect() as conn:
            try:
                version = conn.execute(sa.text("select version_num from alembic_version")).scalar()
            except sa.exc.DatabaseError:
                conn.rollback()
                version = None
        if version != HEAD:
            from conveyor.tracking import migrate

            migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- writing ---------------------------------------------------------------------------

    def apply(self, name: str, records: Iterable[Record]) -> bool:
        """Apply one batch in one transaction; False if it was applied before."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:n))"), {"n": name})
            seen = conn.execute(sa.select(t.applied.c.name).where(t.applied.c.name == name))
            if seen.first() is not None:
                return False
            known: set[str] = set()
            for record in records:
                run_id = str(record["run"])
                if run_id not in known:
                    self._ensure_run(conn, run_id, float(record.get("ts") or time.time()))
                    known.add(run_id)
                self._apply_one(conn, run_id, record)
            conn.execute(t.applied.insert().values(name=name, applied=time.time()))
        return True

    def _ensure_run(self, conn: sa.Connection, run_id: str, ts: float) -> None:
        stmt = self._insert(t.runs).values(id=run_id, started=ts)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))

    def _apply_one(self, conn: sa.Connection, run_id: str, r: Record) -> None:
        kind = r["t"]
        if kind == "run":
            fields = {k: r[k] for k in _RUN_FIELDS if k in r}
            if "environment" in fields:
                fields["environment"] = json.dumps(fields["environment"], sort_keys=True)
            conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(**fields))
        elif kind == "end":
            values = {"status": r["status"], "ended": r["ended"]}
            conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(**values))
        elif kind == "params":
            rows = [
                {"run_id": run_id, "key": k, "value": json.dumps(v, default=str)}
                for k, v in r["params"].items()
            ]
            self._upsert(conn, t.params, rows, ["run_id", "key"], ["value"])
        elif kind == "tags":
            rows = [{"run_id": run_id, "key": k, "value": str(v)} for k, v in r["tags"].items()]
            self._upsert(conn, t.tags, rows, ["run_id", "key"], ["value"])
        elif kind == "metrics":
            self._metrics(conn, run_id, r["points"])
        elif kind == "stages":
            rows = [{"run_id": run_id, **s} for s in r["stages"]]
            self._upsert(
                conn, t.stages, rows, ["run_id", "stage"], ["status", "duration", "exit_code"]
            )
        elif kind == "hashes":
            rows = [
                {"run_id": run_id, "role": role, "path": p, "hash": h}
                for role in ("dep", "out")
                for p, h in r.get(role + "s", {}).items()
            ]
            self._upsert(conn, t.hashes, rows, ["run_id", "role", "path"], ["hash"])
        elif kind == "artifact":
            row = {"run_id": run_id, "path": r["path"], "hash": r["hash"], "size": r["size"]}
            self._upsert(conn, t.artifacts, [row], ["run_id", "path"], ["hash", "size"])
        elif kind == "delete":
            conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(deleted=True))
        else:
            raise ConveyorError(f"unknown record type {kind!r} in a tracking batch")

    def _metrics(self, conn: sa.Connection, run_id: str, points: list[list[Any]]) -> None:
        if not points:
            return
        rows = [
            {"run_id": run_id, "key": k, "value": float(v), "step": s, "ts": ts}
            for k, v, s, ts in points
        ]
        conn.execute(t.metrics.insert(), rows)
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            best = latest.get(row["key"])
            if best is None or _later(row, best):
                latest[row["key"]] = row
        existing = conn.execute(
            sa.select(t.latest_metrics).where(
                t.latest_metrics.c.run_id == run_id, t.latest_metrics.c.key.in_(list(latest))
            )
        ).mappings()
        for old in existing:
            if not _later(latest[old["key"]], old):
                del latest[old["key"]]
        self._upsert(
            conn,
            t.latest_metrics,
            list(latest.values()),
            ["run_id", "key"],
            ["value", "step", "ts"],
        )

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    def _upsert(
        self,
        conn: sa.Connection,
        table: sa.Table,
        rows: list[dict[str, Any]],
        keys: list[str],
        update: list[str],
    ) -> None:
        if not rows:
            return
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in update}
        )
        conn.execute(stmt, rows)

    # -- reading ---------------------------------------------------------------------------

    def runs(self, *, deleted: bool = False) -> list[dict[str, Any]]:
        """Every run with its params, latest metrics and tags, oldest first."""
        with self.engine.connect() as conn:
            query = sa.select(t.runs).order_by(t.runs.c.started, t.runs.c.id)
            if not deleted:
                query = query.where(t.runs.c.deleted == sa.false())
            out = {row["id"]: _run_dict(row) for row in conn.execute(query).mappings()}
            for row in conn.execute(sa.select(t.params)).mappings():
                if row["run_id"] in out:
                    out[row["run_id"]]["params"][row["key"]] = json.loads(row["value"])
            for row in conn.execute(sa.select(t.latest_metrics)).mappings():
                if row["run_id"] in out:
                    out[row["run_id"]]["metrics"][row["key"]] = row["value"]
            for row in conn.execute(sa.select(t.tags)).mappings():
                if row["run_id"] in out:
                    out[row["run_id"]]["tags"][row["key"]] = row["value"]
        return list(out.values())

    def run(self, ref: str) -> dict[str, Any]:
        """One run, by id or a unique prefix of it, with stages, hashes and artifacts."""
        with self.engine.connect() as conn:
            ids = (
                conn.execute(
                    sa.select(t.runs.c.id)
                    .where(t.runs.c.id.startswith(ref, autoescape=True))
                    .limit(2)
                )
                .scalars()
                .all()
            )
            if not ids:
                raise RunNotFound(f"no run {ref!r}", hint="list them with `conveyor runs list`")
            if len(ids) > 1 and ref not in ids:
                raise RunNotFound(f"{ref!r} names more than one run", hint="give more of the id")
            run_id = ref if ref in ids else ids[0]
            row = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).mappings().one()
            run = _run_dict(row)
            for r in conn.execute(
                sa.select(t.params).where(t.params.c.run_id == run_id)
            ).mappings():
                run["params"][r["key"]] = json.loads(r["value"])
            latest = sa.select(t.latest_metrics).where(t.latest_metrics.c.run_id == run_id)
            for r in conn.execute(latest).mappings():
                run["metrics"][r["key"]] = r["value"]
            for r in conn.execute(sa.select(t.tags).where(t.tags.c.run_id == run_id)).mappings():
                run["tags"][r["key"]] = r["value"]
            stage_rows = conn.execute(
                sa.select(t.stages).where(t.stages.c.run_id == run_id).order_by(t.stages.c.stage)
            ).mappings()
            run["stages"] = [
                {k: s[k] for k in ("stage", "status", "duration", "exit_code")} for s in stage_rows
            ]
            run["deps"], run["outs"] = {}, {}
            for h in conn.execute(
                sa.select(t.hashes).where(t.hashes.c.run_id == run_id)
            ).mappings():
                run[h["role"] + "s"][h["path"]] = h["hash"]
            arts = sa.select(t.artifacts).where(t.artifacts.c.run_id == run_id)
            run["artifacts"] = {
                a["path"]: {"hash": a["hash"], "size": a["size"]}
                for a in conn.execute(arts).mappings()
            }
        return run

    def artifact_refs(self) -> dict[str, set[str]]:
        """Object ref -> where it is named, for every artifact of a run not deleted (gc keeps
        these)."""
        query = (
            sa.select(t.artifacts.c.hash, t.artifacts.c.run_id, t.artifacts.c.path)
            .join(t.runs, t.runs.c.id == t.artifacts.c.run_id)
            .where(t.runs.c.deleted == sa.false())
        )
        refs: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            for ref, run_id, path in conn.execute(query):
                refs.setdefault(ref, set()).add(f"run {run_id} ({path})")
        return refs

    def history(self, run_id: str, key: str) -> list[tuple[int | None, float, float]]:
        """Every logged point of one metric: (step, value, time), in logging order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.metrics.c.step, t.metrics.c.value, t.metrics.c.ts)
                .where(t.metrics.c.run_id == run_id, t.metrics.c.key == key)
                .order_by(t.metrics.c.id)
            )
            return [(s, v, ts) for s, v, ts in rows]


_RUN_FIELDS = (
    "name",
    "kind",
    "parent_id",
    "status",
    "started",
    "ended",
    "user",
    "git_commit",
    "git_branch",
    "git_dirty",
    "diff_hash",
    "environment",
)


def _later(a: Any, b: Any) -> bool:
    """Whether point ``a`` supersedes ``b`` as a metric's latest value (higher step, then time)."""
    sa_, sb = a["step"], b["step"]
    if sa_ is not None and sb is not None and sa_ != sb:
        return bool(sa_ > sb)
    return bool(a["ts"] >= b["ts"])


def _run_dict(row: Any) -> dict[str, Any]:
    ended, started = row["ended"], row["started"]
    return {
        "id": row["id"],
        "name": row["name"],
        "kind": row["kind"],
        "parent_id": row["parent_id"],
        "status": row["status"],
        "started": started,
        "ended": ended,
        "duration": None if ended is None else ended - started,
        "user": row["user"],
        "git.commit": row["git_commit"],
        "git.branch": row["git_branch"],
        "git.dirty": row["git_dirty"],
        "diff_hash": row["diff_hash"],
        "environment": json.loads(row["environment"] or "{}"),
        "deleted": bool(row["deleted"]),
        "params": {},
        "metrics": {},
        "tags": {},
    }


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions are begun below, not by the driver
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # Take the write lock at the start: a deferred transaction that must upgrade its
            # lock later fails at once with "database is locked" instead of waiting.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)
