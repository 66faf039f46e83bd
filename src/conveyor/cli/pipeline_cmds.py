"""Pipeline commands: run, dag, metrics show, params show (status lives with the data commands)."""

from __future__ import annotations

import json
import sys
import threading
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.cli.app import arg, command, group
from conveyor.cli.output import cell, echo, style, table

if TYPE_CHECKING:
    from conveyor.data.workspace import Workspace
    from conveyor.pipeline.definition import Pipeline
    from conveyor.pipeline.runner import StageResult
    from conveyor.pipeline.stale import Decision


def load_pipeline(ws: Workspace, overrides: list[str] | None = None) -> Pipeline:
    from conveyor.pipeline import definition
    from conveyor.pipeline.params import parse_override

    parsed = [parse_override(o) for o in overrides or []]
    return definition.load(ws.root, parsed)


_MARKS: dict[str, tuple[str, str | None]] = {
    "ran": ("✓", "green"),
    "restored": ("✓", "green"),
    "checked out": ("✓", "green"),
    "up to date": ("·", None),
    "failed": ("✗", "red"),
    "skipped": ("-", "yellow"),
    "not run": ("-", "yellow"),
    "running": ("▶", "cyan"),
}


class TerminalReporter:
    """Stage output with the stage's name in front, and one line per stage event."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._lock = threading.Lock()

    def line(self, stage: str, text: str, err: bool) -> None:
        stream = sys.stderr if err else sys.stdout
        prefix = style(f"{stage:<{self.width}} |", "blue", stream=stream)
        with self._lock:
            print(f"{prefix} {text}", file=stream, flush=True)

    def event(self, result: StageResult) -> None:
        mark, colour = _MARKS.get(result.status, ("?", None))
        text = {
            "ran": f"{result.name} ran in {result.duration:.1f} s",
            "restored": f"{result.name} restored from run-cache",
            "checked out": f"{result.name} outs checked out from the cache",
            "up to date": f"{result.name} is up to date",
            "failed": f"{result.name} failed",
            "skipped": f"{result.name} skipped",
            "not run": f"{result.name} not run",
            "running": f"running {result.name}",
        }.get(result.status, f"{result.name} {result.status}")
        why = f" ({'; '.join(result.reasons)})" if result.reasons else ""
        with self._lock:
            echo(style(mark, colour) + " " + text + why)
            if result.status == "failed" and result.tail:
                for line in result.tail.rstrip().splitlines():
                    echo(style("    " + line, "red"))
            sys.stdout.flush()


_TARGETS = arg("stages", nargs="*", metavar="STAGE", help="stages to run (default: all)")


RUN_ARGS = (
    _TARGETS,
    arg("-j", "--jobs", type=int, default=0, metavar="N", help="stages at once (default: cores)"),
    arg("-f", "--force", action="store_true", help="run even what is up to date"),
    arg("--downstream", action="store_true", help="run STAGEs and what depends on them"),
    arg("--single", action="store_true", help="run only STAGEs, not what they depend on"),
    arg("--dry", action="store_true", help="print the plan and why; run nothing"),
    arg("-k", "--keep-going", action="store_true", help="a failure stops only its dependents"),
    arg("--no-run-cache", action="store_true", help="run even what the run-cache could restore"),
    arg("-n", "--name", default="", help="a name for the tracked run"),
    arg(
        "-S",
        "--set-param",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a param for this run (train.lr=0.1, other.yaml:key=v)",
    ),
)


@command(
    "run",
    *RUN_ARGS,
    arg("--register", action="store_true", help="register the models: section's packages after"),
    help="run the pipeline's stale stages",
)
def run_cmd(opts: Namespace) -> int:
    """Run what is stale, upstream first, independent stages in parallel."""
    from conveyor.data.workspace import writing
    from conveyor.pipeline.params import applied, parse_override
    from conveyor.pipeline.planner import Options, plan
    from conveyor.pipeline.runner import Run

    if opts.jobs < 0:
        from conveyor.cli.app import UsageError

        raise UsageError("-j must be 1 or more")
    options = Options(
        tuple(opts.stages),
        opts.force,
        opts.downstream,
        opts.single,
        opts.keep_going,
        not opts.no_run_cache,
        opts.jobs,
    )
    with writing("conveyor run") as ws:
        pipeline = load_pipeline(ws, opts.overrides)
        if not pipeline.stages:
            echo("No stages in conveyor.yaml. Declare some under 'stages:'.")
            return 0
        if opts.dry:
            print_plan(plan(ws, pipeline, options))
            return 0
        width = max(len(n) for n in pipeline.stages)
        reporter = TerminalReporter(min(width, 24))
        run = Run(ws, pipeline, options, reporter, name=opts.name)
        with applied(ws.root, [parse_override(o) for o in opts.overrides]):
            results = run.execute()
        _publish(ws.root)
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in counts.items())
        failed = counts.get("failed", 0)
        echo(style(f"{len(results)} stage(s): {summary}", "red" if failed else None, bold=True))
        if getattr(opts, "register", False) and not failed:
            from conveyor.registry.stored import register_declared

            for line in register_declared(ws, run.run_id):
                echo(line)
    return 1 if failed else 0


def _publish(root: Path) -> None:
    """With a shared (server) store, hand the run over now, so the team sees it without anyone
    here reading first; an embedded store is fed by its next reader instead."""
    from conveyor.foundation.errors import ConveyorError
    from conveyor.tracking.db import opened, url_for

    if url_for(root).startswith("sqlite"):
        return
    try:
        with opened(root):
            pass
    except ConveyorError as exc:  # the run happened; its records wait in the spool
        echo(
            f"warning: the run waits in .conveyor/spool until the store answers: {exc.message}",
            err=True,
        )


def print_plan(decisions: dict[str, Decision]) -> None:
    labels = {"run": "run", "checkout": "checkout outs", "skip": "up to date"}
    rows = [[name, labels[d.action], "; ".join(d.reasons) or "-"] for name, d in decisions.items()]
    table(["stage", "action", "why"], rows)


@command(
    "dag",
    arg("--dot", action="store_true", help="Graphviz dot"),
    arg("--mermaid", action="store_true", help="a Mermaid flowchart (renders in Markdown)"),
    help="print the pipeline's graph",
)
def dag_cmd(opts: Namespace) -> None:
    """Print the stages and what each depends on."""
    from conveyor.data.workspace import Workspace

    with Workspace.find() as ws:
        pipeline = load_pipeline(ws)
    edges = [(u, n) for n in pipeline.order for u in pipeline.upstream[n]]
    if opts.dot:
        print("digraph pipeline {")
        print("  rankdir=LR;")
        for name in pipeline.order:
            print(f"  {json.dumps(name)};")
        for u, n in edges:
            print(f"  {json.dumps(u)} -> {json.dumps(n)};")
        print("}")
        return
    if opts.mermaid:
        ids = {name: f"s{i}" for i, name in enumerate(pipeline.order)}
        print("flowchart LR")
        for name in pipeline.order:
            print(f'  {ids[name]}["{name}"]')
        for u, n in edges:
            print(f"  {ids[u]} --> {ids[n]}")
        return
    if not pipeline.order:
        echo("No stages in conveyor.yaml.")
        return
    width = max(len(n) for n in pipeline.order)
    for name in pipeline.order:
        ups = pipeline.upstream[name]
        stage = pipeline.stages[name]
        after = f"<- {', '.join(ups)}" if ups else style("(source)", "cyan")
        desc = f"  # {stage.desc}" if stage.desc else ""
        print(f"{name:<{width}}  {after}{desc}")


group("metrics", help="show the metrics the pipeline writes")
group("params", help="show the params the pipeline uses")
_JSON = arg("--json", dest="as_json", action="store_true", help="print JSON for machines")


@command("metrics show", _JSON, help="print the declared metrics files' values")
def metrics_show_cmd(opts: Namespace) -> None:
    """Print every metric in the declared metrics files (eval.auc is auc in metrics/eval.json)."""
    from conveyor.data.workspace import Workspace
    from conveyor.pipeline import metrics

    with Workspace.find() as ws:
        pipeline = load_pipeline(ws)
        values = metrics.read(ws.root, metrics.metric_files(pipeline))
    if opts.as_json:
        print(json.dumps(values, indent=2))
    elif not values:
        echo("No metrics yet: declare files under a stage's 'metrics:' and run the pipeline.")
    else:
        table(["metric", "value"], [[k, cell(v)] for k, v in values.items()])


@command("params show", _JSON, help="print the params the stages use, with their values")
def params_show_cmd(opts: Namespace) -> None:
    """Print every param a stage uses (train.lr is lr under train in params.yaml)."""
    from conveyor.data.workspace import Workspace
    from conveyor.pipeline import metrics

    with Workspace.find() as ws:
        values = metrics.used_params(load_pipeline(ws))
    if opts.as_json:
        print(json.dumps(values, indent=2, default=str))
    elif not values:
        echo("No params: list keys of params.yaml under a stage's 'params:'.")
    else:
        table(["param", "value"], [[k, cell(v)] for k, v in values.items()])
