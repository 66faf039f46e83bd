"""conveyor feedback: true labels of answered requests, joined later with the prediction log."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from conveyor.cli.app import arg, command, group
from conveyor.cli.output import echo

group("feedback", help="true labels of answered requests (ground truth arriving later)")


@command(
    "feedback add",
    arg("file", metavar="FILE", help="a CSV or Parquet file with id and label columns"),
    arg("--dir", metavar="DIR", help="the feedback folder (default: .conveyor/feedback)"),
    help="add the labels of a CSV or Parquet file",
)
def add_cmd(opts: Namespace) -> None:
    """Add true labels from a CSV or Parquet file with an id column (the x-request-id of each
    answer) and a label column. Ids labelled before, or twice in the file, are skipped (the
    first label wins) and counted; all the file's labels are written, or none."""
    from conveyor.monitor import feedback

    if opts.dir:
        target = Path(opts.dir)
    else:
        from conveyor.foundation.paths import find_root

        target = feedback.folder(find_root())
    added = feedback.add(target, Path(opts.file))
    skipped = f" ({added.duplicates} duplicates skipped)" if added.duplicates else ""
    echo(f"added {added.accepted} labels to {_shown(target)}{skipped}")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
