"""conveyor report: one Markdown file (and an HTML page) for a pull request: the gates'
verdicts, params and metrics against the base, the data and code that changed, and plots."""

from __future__ import annotations

from argparse import Namespace

from conveyor.cli.app import arg, command
from conveyor.cli.output import echo


@command(
    "report",
    arg("--base", metavar="REV_OR_ALIAS", help="compare with: a git revision, an alias or a run"),
    arg("--out", default="reports", metavar="DIR", help="where report.md goes (default: reports)"),
    arg("--no-gates", action="store_true", help="leave the gates out (faster)"),
    help="write a pull-request report: changes, metrics, gates, plots",
)
def report_cmd(opts: Namespace) -> int:
    """The workspace against a base: by default the pull request's target branch in CI, else
    the gates model's `production` alias when it is set, else HEAD."""
    from conveyor.ci import pull_request
    from conveyor.foundation.paths import find_root
    from conveyor.gates import config

    root = find_root()
    gates = config.load(root)
    written = pull_request.write(
        root, gates, base=opts.base, folder=root / opts.out, with_gates=not opts.no_gates
    )
    path = written.path
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    echo(f"wrote {shown} and {shown.with_suffix('.html').name} (plots next to them)")
    return 0  # the gates' verdict is `conveyor check`'s (and `conveyor ci`'s) exit code
