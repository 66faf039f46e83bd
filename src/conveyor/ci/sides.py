"""The two sides of a pull-request report: the workspace, and the base it is compared with (an
alias of the gates' model, a git revision or a run), each as a :class:`~conveyor.ci.report.Side`
whose outs are read from the object cache."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.ci.report import Side
from conveyor.foundation.errors import CiError, ConveyorError, GitError

if TYPE_CHECKING:
    from conveyor.gates.config import Gates
    from conveyor.registry.records import ModelVersion


def default_base(root: Path, gates: Gates) -> str:
    """The pull request's target branch in CI, else the gates model's ``production`` alias when
    it is set, else HEAD."""
    from conveyor.ci.env import current
    from conveyor.foundation import git

    target = current().base_branch
    if target:
        for ref in (f"origin/{target}", target):
            try:
                git.resolve(root, ref)
                return ref
            except GitError:
                continue
    if _alias_version(root, gates, "production") is not None:
        return "production"
    return "HEAD"


def workspace(root: Path) -> Side:
    """The workspace: its params and metrics files, and the deps conveyor.lock records."""
    from conveyor.foundation.paths import read_inside
    from conveyor.pipeline import lock as lock_mod
    from conveyor.pipeline import revisions

    state = revisions.workspace(root)
    deps = {p: m.hash for e in lock_mod.load(root).values() for p, m in e.deps.items()}
    real = root.resolve()
    return Side(
        "workspace", state["params"], state["metrics"], deps, None, lambda p: read_inside(real, p)
    )


def side(root: Path, gates: Gates, ref: str) -> Side:
    """An alias of the gates' model, else a git revision, else a run."""
    from conveyor.foundation import git
    from conveyor.registry.baseline import lock_at, run_record

    version = _alias_version(root, gates, ref)
    if version is not None:
        lineage = version.lineage
        label = f"{ref} (v{version.version})"
        return Side(label, dict(lineage.get("params") or {}), dict(lineage.get("metrics") or {}),
                    dict(lineage.get("deps") or {}), lineage.get("git_commit"),
                    _reader(root, dict(lineage.get("outs") or {})))  # fmt: skip
    try:
        commit = git.resolve(root, ref)
    except GitError:
        commit = None
    if commit is not None:
        from conveyor.pipeline import revisions

        state = revisions.at(root, ref)
        deps, outs = lock_at(root, commit, ref)
        return Side(ref, state["params"], state["metrics"], deps, commit, _reader(root, outs))
    try:
        run = run_record(root, ref)
    except ConveyorError:
        raise CiError(
            f"--base {ref}: no alias, git revision or run has that name",
            hint="give a branch or commit, an alias of the gates' model, or a run id",
        ) from None
    return Side(f"run {run['id']}", run["params"], run["metrics"], run["deps"],
                run.get("git.commit"), _reader(root, run["outs"]))  # fmt: skip


def _alias_version(root: Path, gates: Gates, alias: str) -> ModelVersion | None:
    from conveyor.registry.baseline import alias_version, model_name

    return alias_version(root, model_name(root, gates.model), alias)


def _reader(root: Path, outs: dict[str, str]) -> Any:
    from conveyor.registry.baseline import out_bytes

    return lambda path: out_bytes(root, outs, path)
