"""``conveyor diff``: params and metrics of two git revisions or runs, with the change."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path
from typing import Any

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
    from conveyor.foundation.paths import find_root
    from conveyor.tracking.compare import compare

    root = find_root()
    old_label, old = _side(root, opts.a or "HEAD")
    new_label, new = _side(root, opts.b) if opts.b else ("workspace", _workspace(root))
    rows = compare([old, new])
    if not opts.show_all:
        rows = [r for r in rows if _changed(r["values"][0], r["values"][1])]
    if opts.fmt == "json":
        print(json.dumps({"old": old_label, "new": new_label, "rows": rows}, indent=2, default=str))
        return
    table = [delta_cells(r) for r in rows]
    headers = ["", old_label, new_label, "change", "relative"]
    emit(
        headers,
        table,
        opts.fmt,
        empty=f"No param or metric differs between {old_label} and {new_label}.",
    )


def _changed(a: Any, b: Any) -> bool:
    from conveyor.pipeline.params import same

    return a is None or b is None or not same(a, b)


def _workspace(root: Path) -> dict[str, dict[str, Any]]:
    from conveyor.pipeline import revisions

    return revisions.workspace(root)


def _side(root: Path, ref: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """A git revision if git knows it, else a run (an id or a unique prefix)."""
    from conveyor.foundation import git
    from conveyor.foundation.errors import GitError
    from conveyor.pipeline import revisions

    try:
        git.resolve(root, ref)
    except GitError:
        from conveyor.tracking.db import opened
        from conveyor.tracking.reads import RunNotFound

        with opened(root, write=False) as store:
            try:
                run = store.run(ref)
            except RunNotFound:
                raise RunNotFound(
                    f"{ref!r} is neither a git revision nor a run",
                    hint="give a commit, branch or tag, or a run id from `conveyor runs list`",
                ) from None
        return run["id"], {"params": run["params"], "metrics": run["metrics"]}
    return ref, revisions.at(root, ref)
