"""Registered models: versions with lineage, aliases with an append-only history of moves.

Kept in the metadata store (SQLite or PostgreSQL); a version names its package by the tree
hash under which the package folder is stored in the object cache, so any clone pointed at the
same database and object remote can load it. Writes here are direct transactions (a version
number must be handed out exactly once), not spool records; :func:`set_alias` writes on the
caller's connection, so that an alias move commits together with what goes with it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from conveyor.registry import queries
from conveyor.registry.records import AliasMove, ModelSummary, ModelVersion
from conveyor.registry.uris import ALIAS as ALIAS  # the registry's names, re-exported
from conveyor.registry.uris import MODEL_NAME as MODEL_NAME
from conveyor.registry.uris import ModelNotFound as ModelNotFound
from conveyor.registry.uris import Uri as Uri
from conveyor.registry.uris import check_alias as check_alias
from conveyor.registry.uris import check_name as check_name
from conveyor.registry.uris import parse_uri as parse_uri
from conveyor.tracking import tables as t
from conveyor.tracking.store import SqlStore, executor


class Registry:
    """The registry on a full store: writes are SQLAlchemy transactions, reads the plain SQL of
    :mod:`conveyor.registry.queries` (which a server also runs without SQLAlchemy)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.engine = store.engine
        self.dialect = store.dialect

    def register(
        self,
        name: str,
        package: str,
        flavor: str,
        *,
        run_id: str | None,
        lineage: dict[str, Any],
        user: str,
    ) -> int:
        """A new version of ``name`` (the model is created on its first version)."""
        check_name(name)
        now = time.time()
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:n))"), {"n": name})
            exists = conn.execute(sa.select(t.models.c.name).where(t.models.c.name == name)).first()
            if exists is None:
                conn.execute(t.models.insert().values(name=name, created=now, description=""))
            latest = conn.execute(
                sa.select(sa.func.max(t.model_versions.c.version)).where(
                    t.model_versions.c.name == name
                )
            ).scalar()
            version = int(latest or 0) + 1
            conn.execute(
                t.model_versions.insert().values(
                    name=name,
                    version=version,
                    package=package,
                    flavor=flavor,
                    run_id=run_id,
                    created=now,
                    user=user,
                    lineage=json.dumps(lineage, sort_keys=True, default=str),
                )
            )
        return version

    def models(self) -> list[ModelSummary]:
        return queries.models(self.store.execute)

    def versions(self, name: str) -> list[ModelVersion]:
        execute = self.store.execute
        queries.require(execute, name)
        return queries.versions(execute, name)

    def resolve(self, uri: Uri) -> ModelVersion:
        """The version a URI names (see :func:`conveyor.registry.queries.resolve`)."""
        return queries.resolve(self.store.execute, uri)

    def package_refs(self) -> dict[str, set[str]]:
        """Every registered version's package tree -> the versions naming it (gc keeps them)."""
        return queries.package_refs(self.store.execute)

    def registered(self, *, aliased_only: bool) -> list[ModelVersion]:
        """Every version, or those an alias points at."""
        return queries.registered(self.store.execute, aliased_only=aliased_only)

    def set_tags(self, name: str, version: int | None, tags: dict[str, str]) -> None:
        """Tag the model (``version`` None) or one version; an empty value removes a tag."""
        number = 0 if version is None else version
        with self.engine.begin() as conn:
            execute = executor(conn)
            queries.require(execute, name)
            if version is not None:
                queries.check_version(execute, name, version)
            for key, value in tags.items():
                where = (
                    (t.model_tags.c.name == name)
                    & (t.model_tags.c.version == number)
                    & (t.model_tags.c.key == key)
                )
                conn.execute(t.model_tags.delete().where(where))
                if value != "":
                    conn.execute(
                        t.model_tags.insert().values(
                            name=name, version=number, key=key, value=value
                        )
                    )

    def tags(self, name: str, version: int | None = None) -> dict[str, str]:
        return queries.tags(self.store.execute, name, version)

    def models_aliases(self, name: str) -> dict[str, int]:
        return queries.aliases(self.store.execute, name)

    def set_alias(self, name: str, alias: str, version: int | None, user: str) -> int | None:
        """Point ``alias`` at ``version`` (None deletes it), in a transaction of its own; the
        version it pointed at before. To move it together with other writes (an event, a
        deployment record), call :func:`set_alias` on the caller's connection."""
        with self.engine.begin() as conn:
            return set_alias(conn, name, alias, version, user)

    def history(self, name: str) -> list[AliasMove]:
        return queries.history(self.store.execute, name)


def set_alias(
    conn: sa.Connection, name: str, alias: str, version: int | None, user: str
) -> int | None:
    """Point ``alias`` of model ``name`` at ``version`` (None deletes it) and append the move to
    the alias's history, on ``conn``: both commit or roll back with the caller's transaction.
    Returns the version the alias pointed at before.

        >>> with store.engine.begin() as conn:  # doctest: +SKIP
        ...     previous = set_alias(conn, "clf", "production", 3, user="ci")
        ...     events.append(conn, "alias.moved", "clf@production", {"from": previous, "to": 3})
    """
    check_alias(alias)
    execute = executor(conn)
    queries.require(execute, name)
    if version is not None:
        queries.check_version(execute, name, version)
    previous = queries.aliases(execute, name).get(alias)
    if version is None and previous is None:
        raise ModelNotFound(f"model {name} has no alias {alias!r} to delete")
    where = (t.model_aliases.c.name == name) & (t.model_aliases.c.alias == alias)
    conn.execute(t.model_aliases.delete().where(where))
    if version is not None:
        conn.execute(t.model_aliases.insert().values(name=name, alias=alias, version=version))
    conn.execute(
        t.alias_history.insert().values(
            name=name, alias=alias, version=version, previous=previous, user=user, at=time.time()
        )
    )
    return previous
