"""Registered models: versions with lineage, aliases with an append-only history of moves.

Kept in the metadata store (SQLite or PostgreSQL); a version names its package by the tree
hash under which the package folder is stored in the object cache, so any clone pointed at the
same database and object remote can load it. Writes here are direct transactions (a version
number must be handed out exactly once), not spool records.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from conveyor.registry.uris import ALIAS as ALIAS  # the registry's names, re-exported
from conveyor.registry.uris import MODEL_NAME as MODEL_NAME
from conveyor.registry.uris import ModelNotFound as ModelNotFound
from conveyor.registry.uris import Uri as Uri
from conveyor.registry.uris import check_alias as check_alias
from conveyor.registry.uris import check_name as check_name
from conveyor.registry.uris import parse_uri as parse_uri
from conveyor.tracking import tables as t
from conveyor.tracking.store import SqlStore


class Registry:
    def __init__(self, store: SqlStore) -> None:
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

    def models(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            names = conn.execute(sa.select(t.models.c.name).order_by(t.models.c.name)).scalars()
            out = []
            for name in list(names):
                versions = self._versions(conn, name)
                out.append(
                    {
                        "name": name,
                        "latest": versions[-1]["version"] if versions else None,
                        "versions": len(versions),
                        "aliases": self._aliases(conn, name),
                    }
                )
        return out

    def versions(self, name: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            self._require(conn, name)
            return self._versions(conn, name)

    def resolve(self, uri: Uri) -> dict[str, Any]:
        """The version a URI names, with its aliases."""
        with self.engine.connect() as conn:
            self._require(conn, uri.name)
            version = uri.version
            if uri.alias is not None:
                aliases = self._aliases(conn, uri.name)
                if uri.alias not in aliases:
                    raise ModelNotFound(
                        f"model {uri.name} has no alias {uri.alias!r}",
                        hint=f"aliases: {', '.join(aliases) or 'none yet'}; "
                        f"set one with `conveyor models alias {uri.name}@{uri.alias} VERSION`",
                    )
                version = aliases[uri.alias]
            versions = self._versions(conn, uri.name)
            if version is None:
                return versions[-1]
            found = [v for v in versions if v["version"] == version]
            if not found:
                raise ModelNotFound(
                    f"model {uri.name} has no version {version}",
                    hint=f"versions: 1 to {versions[-1]['version']}",
                )
            return found[0]

    def package_refs(self) -> dict[str, set[str]]:
        """Every registered version's package tree -> the versions naming it (gc keeps them)."""
        refs: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    t.model_versions.c.package, t.model_versions.c.name, t.model_versions.c.version
                )
            )
            for ref, name, version in rows:
                refs.setdefault(ref, set()).add(f"model {name} version {version}")
        return refs

    def registered(self, *, aliased_only: bool) -> list[dict[str, Any]]:
        """Name, version, user, package and lineage of every version, or of those an alias
        points at."""
        v, a = t.model_versions, t.model_aliases
        query = sa.select(v.c.name, v.c.version, v.c.user, v.c.package, v.c.lineage)
        if aliased_only:
            on = (a.c.name == v.c.name) & (a.c.version == v.c.version)
            query = query.select_from(v.join(a, on)).distinct()
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(v.c.name, v.c.version)).mappings()
            return [{**dict(r), "lineage": json.loads(r["lineage"])} for r in rows]

    def set_tags(self, name: str, version: int | None, tags: dict[str, str]) -> None:
        """Tag the model (``version`` None) or one version; an empty value removes a tag."""
        number = 0 if version is None else version
        with self.engine.begin() as conn:
            self._require(conn, name)
            if version is not None and not any(
                v["version"] == version for v in self._versions(conn, name)
            ):
                raise ModelNotFound(f"model {name} has no version {version}")
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
        number = 0 if version is None else version
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.model_tags.c.key, t.model_tags.c.value)
                .where((t.model_tags.c.name == name) & (t.model_tags.c.version == number))
                .order_by(t.model_tags.c.key)
            )
            return {k: v for k, v in rows}

    def models_aliases(self, name: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            return self._aliases(conn, name)

    def set_alias(self, name: str, alias: str, version: int | None, user: str) -> int | None:
        """Point ``alias`` at ``version`` (None deletes it); the version it pointed at before."""
        check_alias(alias)
        with self.engine.begin() as conn:
            self._require(conn, name)
            if version is not None and not any(
                v["version"] == version for v in self._versions(conn, name)
            ):
                raise ModelNotFound(f"model {name} has no version {version}")
            previous = self._aliases(conn, name).get(alias)
            if version is None and previous is None:
                raise ModelNotFound(f"model {name} has no alias {alias!r} to delete")
            where = (t.model_aliases.c.name == name) & (t.model_aliases.c.alias == alias)
            conn.execute(t.model_aliases.delete().where(where))
            if version is not None:
                conn.execute(
                    t.model_aliases.insert().values(name=name, alias=alias, version=version)
                )
            conn.execute(
                t.alias_history.insert().values(
                    name=name,
                    alias=alias,
                    version=version,
                    previous=previous,
                    user=user,
                    at=time.time(),
                )
            )
        return previous

    def history(self, name: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            self._require(conn, name)
            rows = conn.execute(
                sa.select(t.alias_history)
                .where(t.alias_history.c.name == name)
                .order_by(t.alias_history.c.id)
            ).mappings()
            return [{k: r[k] for k in ("alias", "version", "previous", "user", "at")} for r in rows]

    def _require(self, conn: sa.Connection, name: str) -> None:
        if conn.execute(sa.select(t.models.c.name).where(t.models.c.name == name)).first() is None:
            known = conn.execute(sa.select(t.models.c.name)).scalars().all()
            from conveyor.foundation.suggest import did_you_mean

            raise ModelNotFound(
                f"no model named {name!r}",
                hint=did_you_mean(name, known) or "register one with `conveyor models register`",
            )

    def _versions(self, conn: sa.Connection, name: str) -> list[dict[str, Any]]:
        rows = conn.execute(
            sa.select(t.model_versions)
            .where(t.model_versions.c.name == name)
            .order_by(t.model_versions.c.version)
        ).mappings()
        return [{**dict(r), "lineage": json.loads(r["lineage"])} for r in rows]

    def _aliases(self, conn: sa.Connection, name: str) -> dict[str, int]:
        rows = conn.execute(
            sa.select(t.model_aliases.c.alias, t.model_aliases.c.version)
            .where(t.model_aliases.c.name == name)
            .order_by(t.model_aliases.c.alias)
        )
        return {alias: version for alias, version in rows}
