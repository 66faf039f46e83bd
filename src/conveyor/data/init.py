"""``conveyor init``: make ``.conveyor/``, its ``.gitignore`` and a ``conveyor.yaml`` skeleton."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from conveyor.foundation import atomic, fsflags, gitignore
from conveyor.foundation.errors import ConveyorError
from conveyor.foundation.paths import CONTROL_DIR, ProjectPaths

SKELETON = """\
# conveyor.yaml: the project's pipeline, gates, models and deployments.
# Data tracked with `conveyor add` lives in *.cvy pointer files next to it, not here.
#
# stages:              # the pipeline: each stage a command with its deps and outs
#   train:
#     cmd: python train.py
#     deps: [data/train.csv, train.py]
#     params: [train.C]
#     outs: [model.skops]
#     metrics: [metrics/eval.json]
#
# gates:               # checks a candidate must pass before it is promoted
#   - metric: eval.auc
#     min: 0.9
#
# models:              # models registered after a pipeline run
#   classifier:
#     path: model.skops
#
# deploy:              # environments and their rollout strategy
#   production:
#     strategy: canary
stages: {}
"""


class AlreadyAProject(ConveyorError):
    """``conveyor init`` in a folder that already holds ``.conveyor/`` (without ``--force``)."""


@dataclass(frozen=True)
class InitResult:
    root: Path
    in_git: bool
    reinitialised: bool


def init(root: Path, *, force: bool = False) -> InitResult:
    paths = ProjectPaths(root.resolve())
    existed = paths.control.exists()
    # An older project's .gitignore may lack lines (models/, predictions/): a second init is
    # where a user looks for a repair, so it brings them in even when it refuses the rest.
    if existed:
        gitignore.ensure(paths.control)
    if existed and not force:
        raise AlreadyAProject(
            f"{paths.control} already exists: this is a conveyor project",
            hint="pass --force to re-create .conveyor/ (the cache is kept)",
        )
    if existed:
        # The .gitignore stays: its lines are the user's too, and ensure() completed it.
        paths.config.unlink(missing_ok=True)
        shutil.rmtree(paths.tmp, ignore_errors=True)
    for folder in (paths.control, paths.objects, paths.tmp):
        folder.mkdir(parents=True, exist_ok=True)
    fsflags.spread_children(paths.tmp)  # the object cache's writers' folders spread out
    gitignore.ensure(paths.control)
    atomic.write_text(paths.config, "# conveyor settings: `conveyor config KEY VALUE`\n")
    skeleton = paths.root / "conveyor.yaml"
    if not skeleton.exists():
        atomic.write_text(skeleton, SKELETON)
    return InitResult(paths.root, _in_git(paths.root), existed)


def _in_git(root: Path) -> bool:
    return any((p / ".git").exists() for p in (root, *root.parents))


__all__ = ["CONTROL_DIR", "InitResult", "init"]
