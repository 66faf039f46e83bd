"""Every read of the registry, written once in plain SQL that SQLite and PostgreSQL share.

Like :mod:`conveyor.tracking.reads`, each read is a function of an ``execute(sql, params)``
callable: the full store runs it through SQLAlchemy (inside a write's own transaction, see
:func:`conveyor.tracking.store.executor`), and a server resolving ``models:/name@alias`` runs it
through the standard library's sqlite3 without importing SQLAlchemy. Both get the same answer,
and the same :class:`ModelNotFound` on a miss.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from conveyor.registry.deployment import MODES, STATUSES, Deployment
from conveyor.registry.errors import ModelNotFound, RegistryError
from conveyor.registry.records import AliasMove, ModelSummary, ModelVersion
from conveyor.registry.uris import Uri
from conveyor.tracking import events
from conveyor.tracking.events import Event
from conveyor.tracking.reads import Execute

_VERSION_COLUMNS = 'name, version, package, flavor, run_id, created, "user", lineage'
DEPLOYMENT_COLUMNS = (
    "env, model, stable, candidate, mode, status, step, weight, sticky, started, step_started,"
    " failures, previous, message, revision"
)


def require(execute: Execute, name: str) -> None:
    """Nothing, when model ``name`` exists; else a miss naming the nearest model."""
    if execute("SELECT name FROM models WHERE name = :n", {"n": name}):
        return
    from conveyor.foundation.suggest import did_you_mean

    known = [row[0] for row in execute("SELECT name FROM models ORDER BY name", {})]
    raise ModelNotFound(
        f"no model named {name!r}",
        hint=did_you_mean(name, known) or "register one with `conveyor models register`",
    )


def versions(execute: Execute, name: str) -> list[ModelVersion]:
    """Every version of ``name``, oldest first (none for a model that does not exist)."""
    rows = execute(
        f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE name = :n ORDER BY version",
        {"n": name},
    )
    return [_version(row) for row in rows]


def aliases(execute: Execute, name: str) -> dict[str, int]:
    """Alias -> version, for model ``name``, by alias."""
    rows = execute(
        "SELECT alias, version FROM model_aliases WHERE name = :n ORDER BY alias", {"n": name}
    )
    return {str(alias): int(version) for alias, version in rows}


def resolve(execute: Execute, uri: Uri) -> ModelVersion:
    """The version ``uri`` names: an alias's, a number's, or the latest. A miss says what
    exists (the model's aliases, or its range of versions) and how to get what was asked."""
    require(execute, uri.name)
    version = uri.version
    if uri.alias is not None:
        named = aliases(execute, uri.name)
        if uri.alias not in named:
            raise ModelNotFound(
                f"model {uri.name} has no alias {uri.alias!r}",
                hint=f"aliases: {', '.join(named) or 'none yet'}; "
                f"set one with `conveyor models alias {uri.name}@{uri.alias} VERSION`",
            )
        version = named[uri.alias]
    if version is None:
        rows = execute(
            f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE name = :n"
            " ORDER BY version DESC LIMIT 1",
            {"n": uri.name},
        )
    else:
        rows = execute(
            f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE name = :n AND version = :v",
            {"n": uri.name, "v": version},
        )
    if not rows:
        raise ModelNotFound(f"model {uri.name} has no version {version}", hint=_range(execute, uri))
    return _version(rows[0])


def check_version(execute: Execute, name: str, version: int) -> None:
    """Nothing, when ``name`` has ``version``; else a miss saying which versions it has."""
    found = execute(
        "SELECT version FROM model_versions WHERE name = :n AND version = :v",
        {"n": name, "v": version},
    )
    if not found:
        raise ModelNotFound(
            f"model {name} has no version {version}", hint=_range(execute, Uri(name))
        )


def models(execute: Execute) -> list[ModelSummary]:
    """Every model, by name, with its latest version, how many it has, and its aliases."""
    counts = {
        str(name): (int(latest), int(n))
        for name, latest, n in execute(
            "SELECT name, MAX(version), COUNT(*) FROM model_versions GROUP BY name", {}
        )
    }
    out = []
    for (name,) in execute("SELECT name FROM models ORDER BY name", {}):
        latest, n = counts.get(name, (None, 0))
        out.append(ModelSummary(name, latest, n, aliases(execute, name)))
    return out


def registered(execute: Execute, *, aliased_only: bool) -> list[ModelVersion]:
    """Every version by name and number, or only those an alias points at."""
    columns = ", ".join(f"v.{c}" for c in _VERSION_COLUMNS.split(", "))
    query = f"SELECT {columns} FROM model_versions v"
    if aliased_only:
        query = (
            f"SELECT DISTINCT {columns} FROM model_versions v JOIN model_aliases a"
            " ON a.name = v.name AND a.version = v.version"
        )
    return [_version(row) for row in execute(query + " ORDER BY v.name, v.version", {})]


def package_refs(execute: Execute) -> dict[str, set[str]]:
    """Every registered version's package tree -> the versions naming it (gc keeps them)."""
    refs: dict[str, set[str]] = {}
    for ref, name, version in execute("SELECT package, name, version FROM model_versions", {}):
        refs.setdefault(ref, set()).add(f"model {name} version {version}")
    return refs


def history(execute: Execute, name: str) -> list[AliasMove]:
    """Every move of ``name``'s aliases, oldest first."""
    require(execute, name)
    rows = execute(
        'SELECT alias, version, previous, "user", at FROM alias_history WHERE name = :n'
        " ORDER BY id",
        {"n": name},
    )
    return [AliasMove(a, v, p, u, at) for a, v, p, u, at in rows]


def tags(execute: Execute, name: str, version: int | None = None) -> dict[str, str]:
    """The tags of model ``name`` (``version`` None) or of one of its versions, by key."""
    rows = execute(
        "SELECT key, value FROM model_tags WHERE name = :n AND version = :v ORDER BY key",
        {"n": name, "v": 0 if version is None else version},
    )
    return {str(k): str(v) for k, v in rows}


def deployment(execute: Execute, env: str) -> Deployment | None:
    """Environment ``env``'s deployment record; None before its first deploy."""
    rows = execute(f"SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE env = :e", {"e": env})
    return _deployment(rows[0]) if rows else None


def deployments(execute: Execute) -> list[Deployment]:
    """Every environment's deployment record, by environment."""
    rows = execute(f"SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY env", {})
    return [_deployment(row) for row in rows]


def subject(env: str) -> str:
    """The subject of environment ``env``'s events."""
    return f"deploy:{env}"


def deployment_events(execute: Execute, env: str, *, kind: str | None = None) -> list[Event]:
    """Environment ``env``'s events (of one ``kind`` when given), oldest first."""
    return events.read(execute, subject=subject(env), kind=kind)


def last_deployment_event(execute: Execute, env: str, kind: str) -> Event | None:
    """Environment ``env``'s latest event of ``kind`` (its last analysis, say), or None."""
    rows = execute(
        "SELECT id, time, kind, subject, data FROM events WHERE subject = :s AND kind = :k"
        " ORDER BY id DESC LIMIT 1",
        {"s": subject(env), "k": kind},
    )
    if not rows:
        return None
    (i, ts, k, s, data) = rows[0]
    return Event(int(i), float(ts), k, s, json.loads(data or "{}"))


def deployment_event_counts(
    execute: Execute, env: str, *, after: int = 0
) -> tuple[dict[str, int], int]:
    """Environment ``env``'s events with an id above ``after``, counted by kind, and the highest
    id among them (``after`` when there is none): counted again from there, only what was
    added since is read (the index on subject and id bounds the read)."""
    rows = execute(
        "SELECT kind, COUNT(*), MAX(id) FROM events WHERE subject = :s AND id > :a GROUP BY kind",
        {"s": subject(env), "a": after},
    )
    counts = {str(kind): int(n) for kind, n, _ in rows}
    return counts, max([after, *(int(last) for _, _, last in rows)])


def _range(execute: Execute, uri: Uri) -> str:
    rows = execute("SELECT MAX(version) FROM model_versions WHERE name = :n", {"n": uri.name})
    latest = rows[0][0] if rows else None
    return f"versions: 1 to {latest}" if latest else "it has no versions yet"


def _version(row: Sequence[Any]) -> ModelVersion:
    name, version, package, flavor, run_id, created, user, lineage = row
    return ModelVersion(
        name=name,
        version=int(version),
        package=package,
        flavor=flavor,
        run_id=run_id,
        created=created,
        user=user or "",
        lineage=json.loads(lineage or "{}"),
    )


def _deployment(row: Sequence[Any]) -> Deployment:
    env, model, stable, candidate, mode, status, step, weight, sticky = row[:9]
    started, step_started, failures, previous, message, revision = row[9:]
    # The store is shared: a mode or status written by a newer conveyor (or by hand) must not
    # become a value this one's Literal types promise it never holds.
    if mode not in MODES or status not in STATUSES:
        raise RegistryError(
            f"the deployment record of {env!r} has mode {mode!r} and status {status!r}, "
            "which this conveyor does not know",
            hint=f"modes: {', '.join(MODES)}; statuses: {', '.join(STATUSES)}; "
            "upgrade conveyor, or deploy again",
        )
    return Deployment(
        env=env,
        model=model,
        stable=None if stable is None else int(stable),
        candidate=None if candidate is None else int(candidate),
        mode=mode,
        status=status,
        step=int(step),
        weight=float(weight),
        sticky=sticky or "",
        started=float(started),
        step_started=float(step_started),
        failures=int(failures),
        previous=None if previous is None else int(previous),
        message=message or "",
        revision=int(revision),
    )
