"""Params and metrics as they were: at a git revision, or in the workspace now.

At a revision, params come from that revision's ``conveyor.lock`` (the values its stages ran
with) and metrics from the metrics files the pipeline declares, read from git at that revision.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from conveyor.foundation import git
from conveyor.foundation.errors import GitError
from conveyor.pipeline import definition
from conveyor.pipeline import lock as lock_mod
from conveyor.pipeline import metrics as metrics_mod
from conveyor.pipeline import params as params_mod

State = dict[str, dict[str, Any]]  # {"params": {name: value}, "metrics": {name: value}}


def workspace(root: Path) -> State:
    pipeline = definition.load(root)
    files = metrics_mod.metric_files(pipeline)
    return {"params": metrics_mod.used_params(pipeline), "metrics": metrics_mod.read(root, files)}


def at(root: Path, rev: str) -> State:
    """The params and metrics recorded at git revision ``rev``."""
    commit = git.resolve(root, rev)
    prefix = os.path.relpath(root, git.toplevel(root))

    def show(rel: str) -> str | None:
        path = rel if prefix == "." else f"{prefix}/{rel}"
        try:
            return git.run(root, "show", f"{commit}:{path}").decode()
        except GitError:
            return None  # not in that revision

    values: dict[tuple[str, str], Any] = {}
    text = show(lock_mod.FILE)
    if text is not None:
        for entry in lock_mod.parse(text, f"{lock_mod.FILE} at {rev}").values():
            for file, keyed in entry.params.items():
                values.update(((file, key), value) for key, value in keyed.items())
    tables = {}
    for file in metrics_mod.metric_files(definition.load(root)):
        body = show(file)
        if body is not None:
            suffix = PurePosixPath(file).suffix.lower()
            tables[file] = metrics_mod.leaves(params_mod.parse(body, suffix, f"{file} at {rev}"))
    return {"params": metrics_mod.flat_params(values), "metrics": metrics_mod.named(tables)}
