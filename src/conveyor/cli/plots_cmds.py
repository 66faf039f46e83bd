"""``conveyor plots``: metric curves and plots files of several runs, overlaid."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.cli.app import arg, command
from conveyor.cli.output import echo

if TYPE_CHECKING:
    from conveyor.data.objects import ObjectDB


@command(
    "plots",
    arg("runs", nargs="*", metavar="RUN", help="runs to overlay (default: the last three)"),
    arg("--out", metavar="DIR", help="where PNGs and index.html go (default: reports/plots)"),
    help="step-wise metrics and plots files of runs, as PNG and HTML",
)
def plots_cmd(opts: Namespace) -> int:
    """Overlay runs: every metric logged at several steps, and every plot the pipeline declares
    (a stage's plots files, DVC's top-level plots: columns, confusion matrices, images), from
    the cache as each run left it."""
    from conveyor.data.objects import ObjectDB
    from conveyor.foundation.paths import ProjectPaths, find_root
    from conveyor.pipeline import definition
    from conveyor.tracking import plots
    from conveyor.tracking.db import opened

    root = find_root()
    with opened(root, write=False) as store:
        if opts.runs:
            chosen = [store.run(ref) for ref in opts.runs]
        else:
            chosen = [store.run(r["id"]) for r in store.runs()[-3:]]
        if not chosen:
            echo("No runs yet: `conveyor run` records one.")
            return 1
        names = [str(r["name"]) for r in chosen]
        labels = {
            r["id"]: str(r["name"]) if r["name"] and names.count(str(r["name"])) == 1 else r["id"]
            for r in chosen
        }  # a name two runs share would merge their lines: those go by id
        histories = {
            labels[r["id"]]: {k: store.history(r["id"], k) for k in r["metrics"]} for r in chosen
        }
    figures = plots.metric_figures(histories)
    odb = ObjectDB(ProjectPaths(root).objects, ProjectPaths(root).tmp)
    odb.recover()  # after a crash, check what was written just before it
    readers = {labels[r["id"]]: _reader(odb, r["outs"]) for r in chosen}
    found, images = plots.spec_figures(definition.load(root).plots, readers)
    figures += found
    if not figures and not images:
        echo("Nothing to plot: no metric has several steps and no plots file is in the cache.")
        return 1
    out = Path(opts.out) if opts.out else root / "reports" / "plots"
    written = plots.render(figures, out, f"runs {', '.join(histories)}", images)
    for f in written:
        echo(f"wrote {f.relative_to(root) if f.is_relative_to(root) else f}")
    return 0


def _reader(odb: ObjectDB, outs: dict[str, str]) -> Callable[[str], bytes | None]:
    from conveyor.data import recorded

    return lambda file: recorded.read(odb, outs, file)
