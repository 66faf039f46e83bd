"""conveyor check: evaluate the gates of conveyor.yaml on the candidate (the workspace, or a
run), print the verdicts, write reports/gates.{json,md,junit.xml}, store the verdict with the
run, and exit 1 when a blocking gate failed (2 on a config error)."""

from __future__ import annotations

from argparse import Namespace

from conveyor.cli.app import arg, command
from conveyor.cli.output import echo
from conveyor.cli.render import show_checked


@command(
    "check",
    arg("--run", metavar="RUN", help="check this run's metrics and outs (default: the workspace)"),
    arg(
        "--reports",
        default="reports",
        metavar="DIR",
        help="where the reports go (default: reports)",
    ),
    arg("--json", action="store_true", help="print the verdicts as JSON"),
    help="evaluate the quality gates (exit 1 if a blocking gate fails)",
)
def check_cmd(opts: Namespace) -> int:
    """Evaluate the gates declared under `gates:` in conveyor.yaml: thresholds, comparisons with
    a baseline (with significance), slices, data, drift, behaviour, budgets and tests."""
    from conveyor.ci import sections
    from conveyor.ci.check import check
    from conveyor.foundation.paths import find_root
    from conveyor.gates import config

    root = find_root()
    sections.check(root)  # every mistake in conveyor.yaml at once, not only the gates'
    gates = config.load(root)
    if not gates.checks:
        echo("No gates: add a gates: section to conveyor.yaml (see docs/gates.md).")
        return 0
    folder = root / opts.reports
    checked = check(root, gates, run=opts.run, reports=folder)
    return show_checked(root, checked, folder, as_json=opts.json)
