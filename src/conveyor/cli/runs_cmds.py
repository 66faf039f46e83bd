"""Tracked runs: list, show, compare, delete."""

from __future__ import annotations

import json
import time
from argparse import Namespace
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from conveyor.cli.app import arg, command, group
from conveyor.cli.output import cell, echo, style, table
from conveyor.cli.render import delta_cells, emit

if TYPE_CHECKING:
    from conveyor.tracking.store import Store

group("runs", help="list, show, compare and delete tracked runs")

_FORMATS = (
    arg("--json", dest="fmt", action="store_const", const="json", help="JSON for machines"),
    arg("--csv", dest="fmt", action="store_const", const="csv", help="CSV"),
    arg("--md", dest="fmt", action="store_const", const="md", help="a Markdown table"),
)
MAX_PARAMS, MAX_METRICS = 6, 8


@contextmanager
def store(*, write: bool = False) -> Iterator[Store]:
    from conveyor.foundation.paths import find_root
    from conveyor.tracking.db import opened

    with opened(find_root(), write=write) as s:
        yield s


@command(
    "runs list",
    arg("--sort", metavar="KEYS", help="e.g. -metrics.eval.auc or 'params.train.C desc'"),
    arg("--filter", metavar="EXPR", help='e.g. "metrics.eval.auc > 0.9 and params.train.C < 1"'),
    arg("--limit", type=int, default=50, metavar="N", help="at most N runs (default 50)"),
    arg("--columns", metavar="FIELDS", help="comma list of params.X / metrics.Y to show"),
    arg("--deleted", action="store_true", help="include deleted runs"),
    *_FORMATS,
    help="a table of runs with their params and metrics",
)
def runs_list_cmd(opts: Namespace) -> None:
    """List runs, newest first: selected params and metrics as columns."""
    from conveyor.tracking import query

    keep = query.parse_filter(opts.filter) if opts.filter else None
    order = query.parse_sort(opts.sort) if opts.sort else [("started", True)]
    with store() as s:
        found: list[Mapping[str, Any]] = list(s.runs(deleted=opts.deleted))
    if keep is not None:
        found = [r for r in found if keep(r)]
    runs = query.sort_runs(found, order)[: max(opts.limit, 0)]
    fields = _columns(runs, opts.columns)
    if opts.fmt == "json":
        print(json.dumps(runs, indent=2, default=str))
        return
    headers = ["id", "name", "status", "started", "duration", *(_label(f) for f in fields)]
    rows = [
        [
            r["id"],
            r["name"] or "-",
            r["status"],
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started"])),
            _seconds(r["duration"]),
            *(_cell(query.field_value(r, f)) for f in fields),
        ]
        for r in runs
    ]
    emit(headers, rows, opts.fmt, empty="No runs yet: `conveyor run` records one.")


def _columns(runs: Sequence[Mapping[str, Any]], chosen: str | None) -> list[str]:
    if chosen:
        return [c.strip() for c in chosen.split(",") if c.strip()]
    params: dict[str, set[str]] = {}
    metrics: dict[str, None] = {}
    for r in runs:
        for k, v in r["params"].items():
            params.setdefault(k, set()).add(json.dumps(v, sort_keys=True, default=str))
        metrics.update(dict.fromkeys(r["metrics"]))
    # The params that differ between the listed runs say what each run tried.
    varying = [k for k, values in params.items() if len(values) > 1 or len(runs) == 1]
    return [f"params.{k}" for k in varying[:MAX_PARAMS]] + [
        f"metrics.{k}" for k in list(metrics)[:MAX_METRICS]
    ]


def _label(field: str) -> str:
    return field.split(".", 1)[1] if field.startswith(("params.", "metrics.")) else field


def _cell(value: Any) -> str:
    from conveyor.tracking.query import MISSING

    return "-" if value is MISSING else cell(value)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


@command("runs show", arg("run", metavar="RUN"), *_FORMATS[:1], help="one run, whole")
def runs_show_cmd(opts: Namespace) -> None:
    """Everything recorded about one run (an id or a unique prefix of it)."""
    with store() as s:
        run = s.run(opts.run)
    if opts.fmt == "json":
        print(json.dumps(run, indent=2, default=str))
        return
    echo(style(f"run {run['id']}", bold=True) + (f"  {run['name']}" if run["name"] else ""))
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["started"]))
    git = run["git.commit"] or "no commit"
    if run["git.commit"]:
        git = f"{git[:12]} on {run['git.branch'] or 'a detached HEAD'}"
        git += " (uncommitted changes)" if run["git.dirty"] else ""
    for label, value in (
        ("status", run["status"]),
        ("kind", run["kind"]),
        ("started", f"{started} by {run['user'] or '?'}"),
        ("duration", _seconds(run["duration"])),
        ("git", git),
        ("python", run["environment"].get("python", "?")),
    ):
        print(f"  {label:<9} {value}")
    for title, values in (("params", run["params"]), ("metrics", run["metrics"])):
        if values:
            print(style(title, bold=True))
            table(["name", "value"], [[k, _cell(v)] for k, v in sorted(values.items())])
    if run["stages"]:
        print(style("stages", bold=True))
        rows = [
            [s["stage"], s["status"], _seconds(s["duration"]), _cell(s["exit_code"])]
            for s in run["stages"]
        ]
        table(["stage", "status", "duration", "exit code"], rows)
    for title in ("deps", "outs"):
        if run[title]:
            print(style(title, bold=True))
            table(["path", "hash"], [[p, h[:16]] for p, h in sorted(run[title].items())])
    if run["artifacts"]:
        print(style("artifacts", bold=True))
        arts = sorted(run["artifacts"].items())
        table(["path", "hash", "size"], [[p, a["hash"][:16], str(a["size"])] for p, a in arts])


@command(
    "runs compare",
    arg("runs", nargs="+", metavar="RUN"),
    *_FORMATS,
    help="params and metrics of runs side by side",
)
def runs_compare_cmd(opts: Namespace) -> None:
    """Params and metrics side by side; with two runs, the change from the first."""
    from conveyor.tracking.compare import compare

    with store() as s:
        runs = [s.run(ref) for ref in opts.runs]
    if opts.fmt == "json":
        print(json.dumps(compare(runs), indent=2, default=str))
        return
    headers = ["", *(r["id"] for r in runs)]
    pair = len(runs) == 2
    if pair:
        headers += ["change", "relative"]
    rows = [
        delta_cells(row) if pair else [row["name"], *map(_cell, row["values"])]
        for row in compare(runs)
    ]
    emit(headers, rows, opts.fmt, empty="Nothing recorded for these runs.")


@command("runs delete", arg("runs", nargs="+", metavar="RUN"), help="delete runs")
def runs_delete_cmd(opts: Namespace) -> None:
    """Delete runs: hidden from lists, and their artifacts left for `conveyor gc` to remove."""
    from conveyor.foundation.paths import find_root
    from conveyor.tracking import spool

    root = find_root()
    with store(write=True) as s:
        ids = [s.run(ref)["id"] for ref in opts.runs]
        spool.write(root, [{"t": "delete", "run": i, "ts": time.time()} for i in ids])
        spool.drain(root, s)
    for run_id in ids:
        echo(f"deleted run {run_id}")
