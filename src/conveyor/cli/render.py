"""Rendering shared by command modules: rows as a table, CSV or Markdown, compared rows as
cells, and the gates' verdicts. Command modules import these from here, never from each other."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.cli.output import bar, echo, human_size, style, table

if TYPE_CHECKING:
    from conveyor.ci.check import Checked
    from conveyor.ci.pull import Pulled
    from conveyor.data.transfer import TransferResult
    from conveyor.foundation.errors import ConveyorError
    from conveyor.foundation.progress import Progress
    from conveyor.gates.evaluate import Result
    from conveyor.pipeline.definition import Pipeline
    from conveyor.pipeline.launch import Launched
    from conveyor.pipeline.runner import Reporter
    from conveyor.pipeline.runshare import RunsPulled, RunsPushed


def emit(headers: list[str], rows: list[list[str]], fmt: str | None, *, empty: str) -> None:
    """``rows`` as CSV (``fmt="csv"``), a Markdown table (``"md"``) or an aligned table;
    ``empty`` is said instead of an empty table."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    elif fmt == "md":
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for row in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    elif not rows:
        echo(empty)
    else:
        table(headers, rows)


def delta_cells(row: dict[str, Any]) -> list[str]:
    """A compared row's values, its change and its relative change, as table cells."""
    from conveyor.tracking.compare import delta_cells as cells

    return cells(row)


def show_checked(root: Path, checked: Checked, folder: Path, *, as_json: bool) -> int:
    """Print the verdicts (a table, or JSON) and the CI annotations; the exit code."""
    from conveyor.gates import report

    results, meta = checked.results, checked.meta
    overall = checked.verdict
    if as_json:
        print(report.to_json(results, meta), end="")
    else:
        rows = [
            [r.name, report.cell(r.value), report.cell(r.baseline), report.interval(r),
             "" if r.n is None else str(r.n), _verdict(r)]
            for r in results
        ]  # fmt: skip
        table(["gate", "value", "baseline", "interval", "n", "verdict"], rows)
        for r in results:
            if r.verdict != "pass" and r.detail:
                echo(f"  {r.name}: {r.detail}")
            for note in r.notes:
                if note.startswith("no baseline"):
                    echo(f"  {r.name}: {note}")
        _annotate(results)
        shown = folder.relative_to(root) if folder.is_relative_to(root) else folder
        echo(f"Reports: {shown}/gates.md, gates.json, gates.junit.xml")
        word = style("passed", "green", True) if overall == "pass" else style("FAILED", "red", True)
        echo(f"Gates {word}" + ("" if overall == "pass" else ": a blocking gate did not pass"))
    return 0 if overall == "pass" else 1


def _verdict(r: Result) -> str:
    colour = {"pass": "green", "fail": "red", "error": "red", "inconclusive": "yellow"}
    text = r.shown
    return style(text, colour.get(r.verdict) if r.severity == "block" else "yellow")


def _annotate(results: list[Result]) -> None:
    from conveyor.ci.env import annotation, current

    provider = current().provider
    for r in results:
        if r.verdict in ("fail", "inconclusive", "error"):
            message = f"gate {r.name}: {r.shown}: {r.detail}"
            line = annotation(provider, "error" if r.blocks else "warning", message)
            if line:
                print(line)


def show_error(error: ConveyorError) -> None:
    """An error as the entry point prints one, for a flow that goes on (or sums up) after it."""
    from conveyor.foundation.redact import mask_urls

    echo(style("error: ", "red", True, stream=sys.stderr) + mask_urls(error.message), err=True)
    if error.hint:
        echo(f"  hint: {mask_urls(error.hint)}", err=True)


def transferred(verb: str, preposition: str, result: TransferResult) -> None:
    """One line: how many objects moved, how much, where, and how many were there already."""
    noun = "object" if result.transferred == 1 else "objects"
    echo(
        f"{verb} {result.transferred} {noun} ({human_size(result.size)}) "
        f"{preposition} {result.remote}, {result.already} already there"
    )


def show_pulled(pulled: Pulled) -> None:
    """What a pull fetched and checked out, and the registered versions found nowhere."""
    result = pulled.result
    transferred("pulled", "from", result)
    for r in result.checkout:
        if r.changed:
            echo(f"{r.path}: {r.added} added, {r.modified} modified, {r.deleted} deleted")
    if pulled.runs is not None:
        show_runs_pulled(pulled.runs)
    for version in pulled.unavailable:
        echo(
            f"warning: {version} is neither in the cache nor on remote {result.remote!r}: "
            f"not pulled; {version.by} should run `conveyor push` in the clone that "
            "registered it",
            fg="yellow",
            err=True,
        )


def show_runs_pulled(runs: RunsPulled) -> None:
    """The run-cache's entries a pull stored, had, and could not store for want of objects."""
    if runs.unlisted:
        echo(
            f"note: remote {runs.remote!r} is a web server, whose run-cache entries cannot be "
            "listed: none pulled",
            fg="yellow",
            err=True,
        )
        return
    noun = "entry" if runs.pulled == 1 else "entries"
    if runs.objects is not None and runs.objects.transferred:
        transferred("pulled", "from", runs.objects)
    echo(f"pulled {runs.pulled} run-cache {noun} from {runs.remote}, {runs.already} already there")
    if runs.incomplete:
        echo(
            f"note: {len(runs.incomplete)} run-cache {_entry(len(runs.incomplete))} not stored: "
            f"remote {runs.remote!r} lacks objects of their outs (`conveyor gc --remote` removed "
            "them, or a push was interrupted); those stages run again where they come up",
            fg="yellow",
            err=True,
        )


def show_runs_pushed(runs: RunsPushed) -> None:
    """The run-cache's entries a push sent, found there, and skipped."""
    if runs.objects.transferred:
        transferred("pushed", "to", runs.objects)
    noun = "entry" if runs.pushed == 1 else "entries"
    echo(f"pushed {runs.pushed} run-cache {noun} to {runs.remote}, {runs.already} already there")
    if runs.incomplete:
        echo(
            f"note: {len(runs.incomplete)} run-cache {_entry(len(runs.incomplete))} not pushed: "
            "objects of their outs are neither in the cache nor on the remote (`conveyor gc` "
            "removed them); a remote entry always means its outs can be pulled",
            fg="yellow",
            err=True,
        )
    if runs.unreadable:
        echo(
            f"note: {len(runs.unreadable)} run-cache {_entry(len(runs.unreadable))} of this clone "
            f"not pushed: {sorted(runs.unreadable.values())[0]}",
            fg="yellow",
            err=True,
        )


def _entry(n: int) -> str:
    return "entry" if n == 1 else "entries"


class JobPrinter:
    """The job's steps as `conveyor pull`, `conveyor run` and `conveyor check` print them."""

    def __init__(self, root: Path, *, all_models: bool, run_cache: bool = False) -> None:
        self.root = root
        self.all_models = all_models
        self.run_cache = run_cache

    def step(self, name: str) -> None:
        flags = (" --all-models" if self.all_models else "") + (
            " --run-cache" if self.run_cache else ""
        )
        title = {
            "pull": "pull: conveyor pull" + flags,
            "run": "run: conveyor run",
            "check": "check: the gates",
        }.get(name, name)
        echo(style(f"\n== {title}", bold=True))

    def progress(self) -> Progress | None:
        return bar()

    def pulled(self, pulled: Pulled) -> None:
        show_pulled(pulled)

    def reporter(self, pipeline: Pipeline) -> Reporter:
        from conveyor.cli.running import TerminalReporter

        return TerminalReporter(min(max(len(n) for n in pipeline.stages), 24))

    def ran(self, launched: Launched | None, published: ConveyorError | None) -> None:
        from conveyor.cli.running import show_launched

        show_launched(launched, published)

    def checked(self, checked: Checked, folder: Path) -> None:
        show_checked(self.root, checked, folder, as_json=False)

    def failed(self, name: str, error: ConveyorError) -> None:
        show_error(error)
