"""Running the pipeline from the command line: the arguments, the terminal's view of a run,
and the run itself, shared by ``conveyor run`` and ``conveyor exp run``."""

from __future__ import annotations

import sys
import threading
from argparse import Namespace
from typing import TYPE_CHECKING

from conveyor.cli.app import arg
from conveyor.cli.output import echo, style, table

if TYPE_CHECKING:
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.errors import ConveyorError
    from conveyor.pipeline.definition import Pipeline
    from conveyor.pipeline.launch import Launched
    from conveyor.pipeline.runner import StageResult
    from conveyor.pipeline.stale import Decision


def load_pipeline(ws: Workspace, overrides: list[str] | None = None) -> Pipeline:
    from conveyor.pipeline import launch

    return launch.load(ws, overrides or [])


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
    arg(
        "--restore-upstream",
        action="store_true",
        help="restore what STAGEs need from the cache or the run-cache, never run it "
        "(an orchestrator's task: `conveyor export`)",
    ),
    arg("--dry", action="store_true", help="print the plan and why; run nothing"),
    arg("-k", "--keep-going", action="store_true", help="a failure stops only its dependents"),
    arg("--no-run-cache", action="store_true", help="run even what the run-cache could restore"),
    arg("-n", "--name", default="", help="a name for the tracked run"),
    arg(
        "--executor",
        default="",
        metavar="KIND",
        help="where stages run: local, ray (a local Ray, or $RAY_ADDRESS), or ray://HOST:PORT "
        "(default: conveyor.yaml's executor:, else local)",
    ),
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


def defaults() -> Namespace:
    """The options of a bare ``conveyor run``."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    for a in RUN_ARGS:
        parser.add_argument(*a.flags, **a.options)
    return parser.parse_args([])


def run_pipeline(opts: Namespace) -> int:
    """Run what is stale, upstream first, independent stages in parallel."""
    from conveyor.data.workspace import writing
    from conveyor.pipeline import launch
    from conveyor.pipeline.planner import Options, plan

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
        opts.restore_upstream,
        getattr(opts, "executor", ""),
    )
    with writing("conveyor run") as ws:
        pipeline = load_pipeline(ws, opts.overrides)
        if not pipeline.stages:
            show_launched(None, None)
            return 0
        if opts.dry:
            print_plan(plan(ws, pipeline, options))
            return 0
        width = max(len(n) for n in pipeline.stages)
        reporter = TerminalReporter(min(width, 24))
        launched = launch.run(
            ws, pipeline, options, reporter, overrides=opts.overrides, name=opts.name
        )
        show_launched(launched, launch.publish(ws.root))
        failed = launched.failed
        if getattr(opts, "register", False) and not failed:
            from conveyor.registry.stored import register_declared

            for line in register_declared(ws, launched.run_id):
                echo(line)
    return 1 if failed else 0


def show_launched(launched: Launched | None, published: ConveyorError | None) -> None:
    """The end of a run: how many stages did what; a warning when the shared store did not
    take the run (it waits in the spool). None: the pipeline has no stages."""
    if launched is None:
        echo("No stages in conveyor.yaml. Declare some under 'stages:'.")
        return
    if published is not None:  # the run happened; its records wait in the spool
        echo(
            "warning: the run waits in .conveyor/spool until the store answers: "
            + published.message,
            err=True,
        )
    summary = ", ".join(f"{n} {status}" for status, n in launched.counts().items())
    said = f"{len(launched.results)} stage(s): {summary}"
    echo(style(said, "red" if launched.failed else None, bold=True))


def print_plan(decisions: dict[str, Decision]) -> None:
    labels = {"run": "run", "checkout": "checkout outs", "skip": "up to date"}
    rows = [[name, labels[d.action], "; ".join(d.reasons) or "-"] for name, d in decisions.items()]
    table(["stage", "action", "why"], rows)
