"""Params and metrics of two sides, each a git revision (conveyor.lock and the metrics files at
that commit), a tracked run (an id or a unique prefix), or the workspace, with their changes:
what ``conveyor diff`` prints and a report or a UI can show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

Values = dict[str, dict[str, Any]]  # {"params": {...}, "metrics": {...}}


@dataclass(frozen=True)
class Diff:
    old: str  # the sides' labels: a revision as given, a run's id, "workspace"
    new: str
    rows: list[dict[str, Any]]  # tracking.compare rows: key, kind, values, delta, relative


def diff(root: Path, a: str | None, b: str | None, *, every: bool = False) -> Diff:
    """``a`` (default HEAD) against ``b`` (default the workspace); only the values that differ
    unless ``every``."""
    from conveyor.tracking.compare import compare

    old_label, old = side(root, a or "HEAD")
    new_label, new = side(root, b) if b else ("workspace", workspace(root))
    rows = compare([old, new])
    if not every:
        rows = [r for r in rows if _changed(r["values"][0], r["values"][1])]
    return Diff(old_label, new_label, rows)


def workspace(root: Path) -> Values:
    from conveyor.pipeline import revisions

    return revisions.workspace(root)


def side(root: Path, ref: str) -> tuple[str, Values]:
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
                run = store.run_record(ref)
            except RunNotFound:
                raise RunNotFound(
                    f"{ref!r} is neither a git revision nor a run",
                    hint="give a commit, branch or tag, or a run id from `conveyor runs list`",
                ) from None
        return run.id, {"params": dict(run.params), "metrics": dict(run.metrics)}
    return ref, revisions.at(root, ref)


def _changed(a: Any, b: Any) -> bool:
    from conveyor.pipeline.params import same

    return a is None or b is None or not same(a, b)
