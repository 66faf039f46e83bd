"""``conveyor diff``: params and metrics of two git revisions or runs, with the change."""

from __future__ import annotations

import json
from argparse import Namespace

from conveyor.cli.app import arg, command
from conveyor.cli.render import delta_cells, emit


@command(
    "diff",
    arg("a", nargs="?", metavar="REV_OR_RUN", help="the old side (default: HEAD)"),
    arg("b", nargs="?", metavar="REV_OR_RUN", help="the new side (default: the workspace)"),
    arg("--all", dest="show_all", action="store_true", help="unchanged values too"),
    arg("--json", dest="fmt", action="store_const", const="json", help="JSON for machines"),
    arg("--md", dest="fmt", action="store_const", const="md", help="Markdown, for pull requests"),
    help="compare params and metrics of two revisions or runs",
)
def diff_cmd(opts: Namespace) -> None:
    """Params and metrics of git revisions (from conveyor.lock and the metrics files at each)
    or of tracked runs, side by side with absolute and relative changes."""
    from conveyor.ci.diff import diff
    from conveyor.foundation.paths import find_root

    found = diff(find_root(), opts.a, opts.b, every=opts.show_all)
    if opts.fmt == "json":
        doc = {"old": found.old, "new": found.new, "rows": found.rows}
        print(json.dumps(doc, indent=2, default=str))
        return
    emit(
        ["", found.old, found.new, "change", "relative"],
        [delta_cells(r) for r in found.rows],
        opts.fmt,
        empty=f"No param or metric differs between {found.old} and {found.new}.",
    )
