"""Applying spool records to the store in bulk: one statement per table per transaction.

Records are folded in order into per-table row sets (a later value for the same key wins, as
if applied one by one), then written with executemany upserts. Over PostgreSQL this turns
thousands of round trips into a handful; on SQLite it is most of a drain's speed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from conveyor.foundation.errors import TrackingError
from conveyor.tracking import tables as t

Record = Mapping[str, Any]

RUN_FIELDS = (
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


class Fold:
    """Records folded into the rows they leave behind."""

    def __init__(self) -> None:
        self.first_seen: dict[str, float] = {}
        self.run_fields: dict[str, dict[str, Any]] = {}
        self.params: dict[tuple[str, str], str] = {}
        self.tags: dict[tuple[str, str], str] = {}
        self.points: list[dict[str, Any]] = []
        self.stages: dict[tuple[str, str], dict[str, Any]] = {}
        self.hashes: dict[tuple[str, str, str], str] = {}
        self.artifacts: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, r: Record) -> None:
        run = str(r["run"])
        self.first_seen.setdefault(run, float(r.get("ts") or time.time()))
        kind = r["t"]
        if kind == "run":
            fields = {k: _fit(k, r[k]) for k in RUN_FIELDS if k in r}
            if "environment" in fields:
                fields["environment"] = json.dumps(fields["environment"], sort_keys=True)
            self.run_fields.setdefault(run, {}).update(fields)
        elif kind == "end":
            self.run_fields.setdefault(run, {}).update(status=r["status"], ended=r["ended"])
        elif kind == "delete":
            self.run_fields.setdefault(run, {}).update(deleted=True)
        elif kind == "params":
            for k, v in r["params"].items():
                self.params[(run, str(k)[:512])] = json.dumps(v, default=str)
        elif kind == "tags":
            for k, v in r["tags"].items():
                self.tags[(run, str(k)[:512])] = str(v)
        elif kind == "metrics":
            for k, v, s, ts in r["points"]:
                value = float(v)
                if not math.isfinite(value):
                    continue  # NaN and infinities are no measurement: a store refuses them
                step = None if s is None else int(s)
                self.points.append(
                    {"run_id": run, "key": str(k)[:512], "value": value, "step": step, "ts": ts}
                )
        elif kind == "stages":
            for s in r["stages"]:
                self.stages[(run, s["stage"])] = dict(s)
        elif kind == "hashes":
            for role in ("dep", "out"):
                for path, ref in r.get(role + "s", {}).items():
                    self.hashes[(run, role, path)] = ref
        elif kind == "artifact":
            self.artifacts[(run, r["path"])] = {"hash": r["hash"], "size": r["size"]}
        else:
            raise TrackingError(f"unknown record type {kind!r} in a tracking batch")


# Column widths (tables.py): longer text is cut rather than refused by PostgreSQL.
_WIDTHS = {"name": 256, "kind": 32, "parent_id": 64, "status": 16, "user": 128, "git_branch": 256}


def _fit(key: str, value: Any) -> Any:
    width = _WIDTHS.get(key)
    return value[:width] if width and isinstance(value, str) else value


def write(conn: sa.Connection, fold: Fold, insert: Any) -> None:
    """Write ``fold``'s rows; ``insert`` makes the dialect's INSERT (with ON CONFLICT)."""

    def upsert(
        table: sa.Table, rows: list[dict[str, Any]], keys: list[str], cols: list[str]
    ) -> None:
        if rows:
            stmt = insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=keys, set_={c: stmt.excluded[c] for c in cols}
            )
            conn.execute(stmt, rows)

    if fold.first_seen:
        rows = [{"id": run, "started": ts} for run, ts in fold.first_seen.items()]
        conn.execute(insert(t.runs).on_conflict_do_nothing(index_elements=["id"]), rows)
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for run, fields in fold.run_fields.items():
        by_shape.setdefault(tuple(sorted(fields)), []).append({"_id": run, **fields})
    for shape, rows in by_shape.items():
        stmt = t.runs.update().where(t.runs.c.id == sa.bindparam("_id"))
        conn.execute(stmt.values({c: sa.bindparam(c) for c in shape}), rows)
    upsert(
        t.params,
        [{"run_id": r, "key": k, "value": v} for (r, k), v in fold.params.items()],
        ["run_id", "key"],
        ["value"],
    )
    upsert(
        t.tags,
        [{"run_id": r, "key": k, "value": v} for (r, k), v in fold.tags.items()],
        ["run_id", "key"],
        ["value"],
    )
    upsert(
        t.stages,
        [{"run_id": r, **s} for (r, _), s in fold.stages.items()],
        ["run_id", "stage"],
        ["status", "duration", "exit_code"],
    )
    upsert(
        t.hashes,
        [{"run_id": r, "role": o, "path": p, "hash": h} for (r, o, p), h in fold.hashes.items()],
        ["run_id", "role", "path"],
        ["hash"],
    )
    upsert(
        t.artifacts,
        [{"run_id": r, "path": p, **a} for (r, p), a in fold.artifacts.items()],
        ["run_id", "path"],
        ["hash", "size"],
    )
    if fold.points:
        conn.execute(t.metrics.insert(), fold.points)
        _latest(conn, fold.points, upsert)


def _latest(conn: sa.Connection, points: list[dict[str, Any]], upsert: Any) -> None:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for p in points:
        key = (p["run_id"], p["key"])
        if key not in latest or later(p, latest[key]):
            latest[key] = p
    runs = sorted({r for r, _ in latest})
    existing = conn.execute(
        sa.select(t.latest_metrics).where(t.latest_metrics.c.run_id.in_(runs))
    ).mappings()
    for old in existing:
        key = (old["run_id"], old["key"])
        if key in latest and not later(latest[key], old):
            del latest[key]
    upsert(t.latest_metrics, list(latest.values()), ["run_id", "key"], ["value", "step", "ts"])


def later(a: Any, b: Any) -> bool:
    """Whether point ``a`` supersedes ``b`` as a metric's latest value (higher step, then time)."""
    sa_, sb = a["step"], b["step"]
    if sa_ is not None and sb is not None and sa_ != sb:
        return bool(sa_ > sb)
    return bool(a["ts"] >= b["ts"])


def fold_all(batches: Iterable[Iterable[Record]]) -> Fold:
    fold = Fold()
    for records in batches:
        for record in records:
            fold.add(record)
    return fold
