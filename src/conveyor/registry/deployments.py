"""Writing an environment's deployment record: the revision check, the row, the alias move and
the events, in one transaction.

Several writers may decide about one environment: the rollout controller's tick, a person's
``rollout abort``, a second controller started by mistake. Each reads the record, decides from
it, and calls :func:`save` with the revision it read. The row is written only if that is still
the stored revision (optimistic concurrency, as Kubernetes' ``resourceVersion``): of two writers
that read revision 4, one writes and the other gets :class:`Conflict`, and must read again and
decide again. Nothing is locked between the read and the write, so a slow decision holds up
no one. The check is in the write itself (``UPDATE ... WHERE revision = :expected``; an insert
that does nothing when the row exists), so it holds on PostgreSQL under READ COMMITTED, where
the other writer's commit can land between this one's read and its write; on SQLite every
transaction takes the write lock up front and writers queue.

What goes with the record commits or rolls back with it: the events of the decision (subject
``deploy:<env>``), and, when the stable version changes (a first deploy, a promotion, a
rollback), the move of the alias named like the environment (``<model>@<env>``, what a server
started with ``models:/<model>@<env>`` follows) with its ``alias.moved`` event. Pass a
connection to write inside a transaction of the caller's, or the store for one of its own.

    >>> d = Deployment("production", "clf", stable=3)  # doctest: +SKIP
    >>> d = save(store, d, [("rollout.promoted", {"to": 3})], expected=None)
    >>> save(store, d.but(status="idle"), [], expected=d.revision)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from conveyor.foundation.errors import ConfigError
from conveyor.registry import queries
from conveyor.registry.deployment import Deployment
from conveyor.registry.errors import RegistryError
from conveyor.registry.queries import subject as subject  # re-exported: events' subject
from conveyor.registry.uris import check_alias
from conveyor.registry.versions import set_alias
from conveyor.tracking import events as events_mod
from conveyor.tracking import tables as t
from conveyor.tracking.events import Event
from conveyor.tracking.reads import Execute
from conveyor.tracking.store import SqlStore, Store, executor

__all__ = ["Conflict", "history", "save", "subject"]


class Conflict(RegistryError):
    """The record changed since it was read: read it again, decide again, save again."""


def save(
    store: SqlStore | sa.Connection,
    new: Deployment,
    events: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    expected: int | None,
    user: str | None = None,
) -> Deployment:
    """Write ``new`` if the stored record's revision is still ``expected`` (None: there is no
    record yet), with ``events`` (kind, data) and, when the stable version changes, the alias
    ``<model>@<env>`` moved to it; else :class:`Conflict`, and nothing is written. On a
    connection, all of it is in the caller's transaction. Returns the record as stored:
    ``new``, its revision raised above ``expected`` if the caller had not bumped it (a server
    applies each revision once). ``user`` is recorded in the alias's history (default: the
    logged-in user)."""
    if isinstance(store, sa.Connection):
        return _save(store, new, events, expected, user)
    with store.engine.begin() as conn:
        return _save(conn, new, events, expected, user)


def history(source: Store | Execute, env: str) -> list[Event]:
    """Every event of environment ``env``, oldest first (from a store, or an ``execute``)."""
    return queries.deployment_events(source if callable(source) else source.execute, env)


def _save(
    conn: sa.Connection,
    new: Deployment,
    events: Sequence[tuple[str, Mapping[str, Any]]],
    expected: int | None,
    user: str | None,
) -> Deployment:
    _check_env(new)
    execute = executor(conn)
    queries.require(execute, new.model)
    for version in {new.stable, new.candidate} - {None}:
        assert version is not None
        queries.check_version(execute, new.model, version)
    stored = queries.deployment(execute, new.env)
    if (None if stored is None else stored.revision) != expected:
        raise _conflict(new.env, stored, expected)
    floor = -1 if expected is None else expected
    if new.revision <= floor:
        new = dataclasses.replace(new, revision=floor + 1)
    row = {**dataclasses.asdict(new), "updated": time.time()}
    if expected is None:
        write = _insert(conn).values(**row).on_conflict_do_nothing()
    else:
        where = (t.deployments.c.env == new.env) & (t.deployments.c.revision == expected)
        write = t.deployments.update().where(where).values(**row)
    # RETURNING, not rowcount: an insert's rowcount is not the rows it wrote on every driver.
    if conn.execute(write.returning(t.deployments.c.env)).first() is None:
        # Another writer committed between the read above and this write (PostgreSQL).
        raise _conflict(new.env, queries.deployment(execute, new.env), expected)
    before = None if stored is None else stored.stable
    if new.stable is not None and new.stable != before:
        _move_alias(conn, new, user)
    for kind, data in events:
        events_mod.append(conn, kind, subject(new.env), dict(data))
    return new


def _check_env(new: Deployment) -> None:
    """An environment's name is also the alias of its stable version: it must be one."""
    try:
        check_alias(new.env)
    except ConfigError as exc:
        raise ConfigError(
            f"environment {new.env!r} cannot be deployed: its name is also the alias of its "
            f"stable version ({new.model}@{new.env}), and {exc.message}",
            hint="rename the environment under deploy: in conveyor.yaml: "
            "lowercase letters, digits, _ and -, at most 64",
        ) from exc


def _move_alias(conn: sa.Connection, new: Deployment, user: str | None) -> None:
    """Point ``<model>@<env>`` at the new stable version, unless it already does (a first
    deploy of the version the alias names): no move, no event."""
    assert new.stable is not None
    if queries.aliases(executor(conn), new.model).get(new.env) == new.stable:
        return
    if user is None:
        from conveyor.tracking.api import user_name

        user = user_name()
    previous = set_alias(conn, new.model, new.env, new.stable, user)
    events_mod.append(
        conn,
        "alias.moved",
        f"{new.model}@{new.env}",
        {"from": previous, "to": new.stable, "by": subject(new.env)},
    )


def _insert(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(t.deployments)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(t.deployments)


def _conflict(env: str, stored: Deployment | None, expected: int | None) -> Conflict:
    found = "no record" if stored is None else f"revision {stored.revision}"
    wanted = "no record" if expected is None else f"revision {expected}"
    return Conflict(
        f"the deployment of {env!r} changed while this change was decided: the store has "
        f"{found}, the change was made from {wanted}",
        hint=f"another command or controller is changing it; see `conveyor rollout status {env}`"
        " and try again",
    )
