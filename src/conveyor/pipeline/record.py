"""A pipeline run as a tracked run: what ``conveyor run`` tells the metadata store.

Two spool files per run: the start (so that stages logging through the Python API attach to a
run that exists) and, when it ends however it ends, the rest: the params the stages used
(``-S`` overrides included), the metrics in the declared metrics files, the hash of every dep
and out of the stages considered, a record per stage, and the end status.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from conveyor.foundation.errors import ConveyorError
from conveyor.pipeline import metrics as metrics_mod
from conveyor.pipeline.definition import Pipeline
from conveyor.pipeline.lock import Entry
from conveyor.tracking import spool
from conveyor.tracking.api import git_state, user_name

KIND_ENV = "CONVEYOR_RUN_KIND"  # set by `conveyor exp` and `conveyor tune` for their runs
TAGS_ENV = "CONVEYOR_RUN_TAGS"  # JSON tags for the run (a trial's study and number)

# Packages whose versions are recorded with a run, when installed.
KEY_PACKAGES = (
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "torch",
    "tensorflow",
    "xgboost",
    "lightgbm",
    "optuna",
)


_CURRENT = ("ran", "restored", "checked out", "up to date")  # outs match the lock after these


class StageLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def duration(self) -> float: ...
    @property
    def code(self) -> int | None: ...


class Recorder:
    def __init__(self, root: Path, run_id: str, name: str) -> None:
        self.root = root
        self.run_id = run_id
        self.started = time.time()
        record = {
            "t": "run",
            "run": run_id,
            "ts": self.started,
            "name": name,
            "kind": os.environ.get(KIND_ENV, "pipeline"),
            "status": "running",
            "started": self.started,
            "user": user_name(),
            **git_state(root),
        }
        records: list[dict[str, Any]] = [record]
        tags = os.environ.get(TAGS_ENV)
        if tags:
            records.append(
                {"t": "tags", "run": run_id, "ts": self.started, "tags": json.loads(tags)}
            )
        spool.write(root, records)

    def finish(
        self,
        pipeline: Pipeline,
        entries: Mapping[str, Entry],
        results: Sequence[StageLike],
        status: str,
    ) -> None:
        now = time.time()
        base = {"run": self.run_id, "ts": now}
        deps: dict[str, str] = {}
        outs: dict[str, str] = {}
        # Only stages whose outs are this run's say something about it: a failed or skipped
        # stage's lock entry and metrics files are an earlier run's.
        good = [r.name for r in results if r.status in _CURRENT]
        for name in good:
            entry = entries.get(name)
            if entry is not None:
                deps.update({p: m.hash for p, m in entry.deps.items()})
                outs.update({p: m.hash for p, m in entry.outs.items()})
        files = [o.path for n in good for o in pipeline.stages[n].outs if o.kind == "metrics"]
        tags: dict[str, str] = {}
        try:
            values = metrics_mod.read(self.root, list(dict.fromkeys(files)))
        except ConveyorError as exc:  # a stage wrote a metrics file that does not parse
            values = {}
            tags["conveyor.metrics_error"] = exc.message
        numbers = {
            k: float(v)
            for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        stages = [
            {"stage": r.name, "status": r.status, "duration": r.duration, "exit_code": r.code}
            for r in results
        ]
        records: list[dict[str, Any]] = [
            {**base, "t": "run", "environment": environment()},
            {**base, "t": "params", "params": metrics_mod.used_params(pipeline)},
            {**base, "t": "metrics", "points": [[k, v, None, now] for k, v in numbers.items()]},
            {**base, "t": "hashes", "deps": deps, "outs": outs},
            {**base, "t": "stages", "stages": stages},
            {**base, "t": "tags", "tags": tags},
            {**base, "t": "end", "status": status, "ended": now},
        ]
        spool.write(self.root, records)


def environment() -> dict[str, Any]:
    """Python's version and the key packages' versions, read from the dist-info folder names
    (``importlib.metadata`` would cost a no-op run a third of its time)."""
    import sysconfig

    wanted = {_normal(n): n for n in KEY_PACKAGES}
    packages: dict[str, str] = {}
    for key in ("purelib", "platlib"):
        try:
            names = os.listdir(sysconfig.get_path(key))
        except OSError:
            continue
        for entry in names:
            if not entry.endswith(".dist-info"):
                continue
            name, _, version = entry[: -len(".dist-info")].partition("-")
            known = wanted.get(_normal(name))
            if known and version:
                packages[known] = version
    return {"python": platform.python_version(), "packages": dict(sorted(packages.items()))}


def _normal(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")
