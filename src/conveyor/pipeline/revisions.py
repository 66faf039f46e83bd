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
from conveyor.pipeline.stale import param_name

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

    params: dict[str, Any] = {}
    text = show(lock_mod.FILE)
    if text is not None:
        for entry in lock_mod.parse(text, f"{lock_mod.FILE} at {rev}").values():
            for file, values in entry.params.items():
                for key, value in values.items():
                    name = param_name(file, key)
                    if isinstance(value, dict) and value:
                        for sub, leaf in params_mod.flatten(value).items():
                            params[f"{name}.{sub}"] = leaf
                    else:
                        params[name] = value
    files = metrics_mod.metric_files(definition.load(root))
    stems = [PurePosixPath(f).stem for f in files]
    metrics: dict[str, Any] = {}
    for file, stem in zip(files, stems, strict=True):
        body = show(file)
        if body is None:
            continue
        data = params_mod.parse(body, PurePosixPath(file).suffix.lower(), f"{file} at {rev}")
        prefix_name = f"{stem}." if stems.count(stem) == 1 else f"{file}:"
        for key, value in params_mod.flatten(data).items():
            if isinstance(value, int | float | str | bool) or value is None:
                metrics[prefix_name + key] = value
    return {"params": dict(sorted(params.items())), "metrics": metrics}
