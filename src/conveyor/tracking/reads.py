"""Every read of the metadata store, written once in plain SQL that SQLite and PostgreSQL share.

A read is a function of an ``execute(sql, params) -> rows`` callable, so the same queries run
through SQLAlchemy (:class:`~conveyor.tracking.store.SqlStore`) and through the standard
library's sqlite3 (:class:`~conveyor.tracking.fast.SqliteReader`, which spares a command that
only reads the ~0.25 s it takes to import SQLAlchemy).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.foundation.errors import ConveyorError

HEAD = "0005"  # the newest migration: the schema these queries are written for
VERSION_TABLE = "conveyor_version"  # where Alembic records it (Optuna owns "alembic_version")

Execute = Callable[[str, Mapping[str, Any]], Sequence[Sequence[Any]]]

_RUN_COLUMNS = (
    'id, name, kind, parent_id, status, started, ended, "user", git_commit, git_branch,'
    " git_dirty, diff_hash, environment, deleted"
)


class Reads:
    """The read half of the store protocol, for a class that provides ``execute``."""

    def execute(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        raise NotImplementedError

    def runs(self, *, deleted: bool = False) -> list[dict[str, Any]]:
        return runs(self.execute, deleted=deleted)

    def run(self, ref: str) -> dict[str, Any]:
        return run(self.execute, ref)

    def run_record(self, ref: str) -> RunRecord:
        return run_record(self.execute, ref)

    def history(self, run_id: str, key: str) -> list[tuple[int | None, float, float]]:
        return history(self.execute, run_id, key)

    def artifact_refs(self) -> dict[str, set[str]]:
        return artifact_refs(self.execute)


class RunNotFound(ConveyorError):
    exit_code = 2


@dataclass(frozen=True)
class Stage:
    """How one stage went in a run."""

    stage: str
    status: str
    duration: float | None
    exit_code: int | None


@dataclass(frozen=True)
class RunRecord:
    """One run as the store holds it: its row, params, latest metrics, tags, stages, the hashes
    of its deps and outs (path -> hash) and its artifacts (path -> hash and size)."""

    id: str
    name: str
    kind: str
    parent_id: str | None
    status: str
    started: float
    ended: float | None
    user: str
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    diff_hash: str | None
    environment: dict[str, Any]
    deleted: bool
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    stages: tuple[Stage, ...] = ()
    deps: dict[str, str] = field(default_factory=dict)
    outs: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def as_dict(self) -> dict[str, Any]:
        """The record as :func:`run` has always returned it (``git.commit``-style keys), for
        the JSON output and the callers that still read dicts."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "parent_id": self.parent_id,
            "status": self.status,
            "started": self.started,
            "ended": self.ended,
            "duration": self.duration,
            "user": self.user,
            "git.commit": self.git_commit,
            "git.branch": self.git_branch,
            "git.dirty": self.git_dirty,
            "diff_hash": self.diff_hash,
            "environment": dict(self.environment),
            "deleted": self.deleted,
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
            "stages": [
                {
                    "stage": s.stage,
                    "status": s.status,
                    "duration": s.duration,
                    "exit_code": s.exit_code,
                }
                for s in self.stages
            ],
            "deps": dict(self.deps),
            "outs": dict(self.outs),
            "artifacts": {path: dict(a) for path, a in self.artifacts.items()},
        }


def runs(execute: Execute, *, deleted: bool = False) -> list[dict[str, Any]]:
    """Every run with its params, latest metrics and tags, oldest first."""
    where = "" if deleted else " WHERE NOT deleted"
    rows = execute(f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY started, id", {})
    out = {row[0]: _run_dict(row) for row in rows}
    for run_id, key, value in execute("SELECT run_id, key, value FROM params", {}):
        if run_id in out:
            out[run_id]["params"][key] = json.loads(value)
    for run_id, key, value in execute("SELECT run_id, key, value FROM latest_metrics", {}):
        if run_id in out:
            out[run_id]["metrics"][key] = value
    for run_id, key, value in execute("SELECT run_id, key, value FROM tags", {}):
        if run_id in out:
            out[run_id]["tags"][key] = value
    return list(out.values())


def resolve(execute: Execute, ref: str) -> str:
    """The id of the run ``ref`` names: an id, a unique prefix of one, or a unique name."""
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    ids = [
        row[0]
        for row in execute(
            "SELECT id FROM runs WHERE id LIKE :p ESCAPE '\\' ORDER BY id LIMIT 2",
            {"p": escaped + "%"},
        )
    ]
    if not ids:  # not an id: a run's name, if exactly one run (not deleted) has it
        named = [
            row[0]
            for row in execute(
                "SELECT id FROM runs WHERE name = :n AND NOT deleted ORDER BY id LIMIT 2",
                {"n": ref},
            )
        ]
        if len(named) == 1:
            return str(named[0])
        if named:
            raise RunNotFound(f"several runs are named {ref!r}", hint="give the run's id")
        raise RunNotFound(f"no run {ref!r}", hint="list them with `conveyor runs list`")
    if len(ids) > 1 and ref not in ids:
        raise RunNotFound(f"{ref!r} names more than one run", hint="give more of the id")
    return ref if ref in ids else ids[0]


def run(execute: Execute, ref: str) -> dict[str, Any]:
    """One run, by id or a unique prefix, with its stages, dep/out hashes and artifacts."""
    return run_record(execute, ref).as_dict()


def run_record(execute: Execute, ref: str) -> RunRecord:
    """One run, by id or a unique prefix, with its stages, dep/out hashes and artifacts."""
    run_id = resolve(execute, ref)
    by_id = {"r": run_id}
    (row,) = execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = :r", by_id)
    params = {
        key: json.loads(value)
        for key, value in execute("SELECT key, value FROM params WHERE run_id = :r", by_id)
    }
    metrics = {
        key: value
        for key, value in execute("SELECT key, value FROM latest_metrics WHERE run_id = :r", by_id)
    }
    tags = {
        key: value for key, value in execute("SELECT key, value FROM tags WHERE run_id = :r", by_id)
    }
    stages = tuple(
        Stage(s, st, d, c)
        for s, st, d, c in execute(
            "SELECT stage, status, duration, exit_code FROM stages WHERE run_id = :r"
            " ORDER BY stage",
            by_id,
        )
    )
    hashes: dict[str, dict[str, str]] = {"dep": {}, "out": {}}
    for role, path, ref_hash in execute(
        "SELECT role, path, hash FROM hashes WHERE run_id = :r", by_id
    ):
        hashes[role][path] = ref_hash
    artifacts = {
        path: {"hash": h, "size": size}
        for path, h, size in execute(
            "SELECT path, hash, size FROM artifacts WHERE run_id = :r", by_id
        )
    }
    fields = _run_dict(row)
    return RunRecord(
        id=fields["id"],
        name=fields["name"],
        kind=fields["kind"],
        parent_id=fields["parent_id"],
        status=fields["status"],
        started=fields["started"],
        ended=fields["ended"],
        user=fields["user"],
        git_commit=fields["git.commit"],
        git_branch=fields["git.branch"],
        git_dirty=fields["git.dirty"],
        diff_hash=fields["diff_hash"],
        environment=fields["environment"],
        deleted=fields["deleted"],
        params=params,
        metrics=metrics,
        tags=tags,
        stages=stages,
        deps=hashes["dep"],
        outs=hashes["out"],
        artifacts=artifacts,
    )


def history(execute: Execute, run_id: str, key: str) -> list[tuple[int | None, float, float]]:
    """Every logged point of one metric: (step, value, time), in logging order."""
    rows = execute(
        "SELECT step, value, ts FROM metrics WHERE run_id = :r AND key = :k ORDER BY id",
        {"r": run_id, "k": key},
    )
    return [(s, v, ts) for s, v, ts in rows]


def artifact_refs(execute: Execute) -> dict[str, set[str]]:
    """Object ref -> where it is named, for the artifacts of runs not deleted (gc keeps them)."""
    refs: dict[str, set[str]] = {}
    for ref, run_id, path in execute(
        "SELECT a.hash, a.run_id, a.path FROM artifacts a JOIN runs r ON r.id = a.run_id"
        " WHERE NOT r.deleted",
        {},
    ):
        refs.setdefault(ref, set()).add(f"run {run_id} ({path})")
    return refs


def _run_dict(row: Sequence[Any]) -> dict[str, Any]:
    (
        rid,
        name,
        kind,
        parent,
        status,
        started,
        ended,
        user,
        commit,
        branch,
        dirty,
        diff,
        env,
        gone,
    ) = row
    return {
        "id": rid,
        "name": name,
        "kind": kind,
        "parent_id": parent,
        "status": status,
        "started": started,
        "ended": ended,
        "duration": None if ended is None else ended - started,
        "user": user,
        "git.commit": commit,
        "git.branch": branch,
        "git.dirty": None if dirty is None else bool(dirty),
        "diff_hash": diff,
        "environment": json.loads(env or "{}"),
        "deleted": bool(gone),
        "params": {},
        "metrics": {},
        "tags": {},
    }
