"""A pipeline run as a tracked run: what ``conveyor run`` tells the metadata store.

Two spool files per run: the start (so that stages logging through the Python API attach to a
run that exists) and, when it ends however it ends, the rest: the params the stages used
(``-S`` overrides included), the metrics in the declared metrics files, the hash of every dep
and out of the stages considered, a record per stage, and the end status.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from conveyor.foundation import atomic
from conveyor.foundation.errors import ConveyorError
from conveyor.foundation.paths import CONTROL_DIR
from conveyor.pipeline import metrics as metrics_mod
from conveyor.pipeline.definition import Pipeline
from conveyor.pipeline.lock import Entry
from conveyor.tracking import spool
from conveyor.tracking.api import git_state, user_name

KIND_ENV = "CONVEYOR_RUN_KIND"  # set by `conveyor exp` and `conveyor tune` for their runs
TAGS_ENV = "CONVEYOR_RUN_TAGS"  # JSON tags for the run (a trial's study and number)

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
        tags: dict[str, str] = {}
        try:
            values = metrics_mod.read(self.root, metrics_mod.files_of(pipeline, good))
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
            {**base, "t": "run", "environment": environment(self.root, _path(pipeline, good))},
            {**base, "t": "params", "params": metrics_mod.used_params(pipeline)},
            {**base, "t": "metrics", "points": [[k, v, None, now] for k, v in numbers.items()]},
            {**base, "t": "hashes", "deps": deps, "outs": outs},
            {**base, "t": "stages", "stages": stages},
            {**base, "t": "tags", "tags": tags},
            {**base, "t": "end", "status": status, "ended": now},
        ]
        spool.write(self.root, records)


# Run by the stages' own interpreter: it lists the distributions on its sys.path (reading
# folder names only: importlib.metadata would cost a run a third of its time). It runs in the
# project, and `-c` puts the working folder first on sys.path: dropped before any import, so
# that a project's own json.py or platform.py is neither run nor taken for the standard one.
_PROBE = """import sys
sys.path = [p for p in sys.path if p]
import json, os, platform
dirs = [os.path.abspath(d) for d in sys.path if d and os.path.isdir(d)]
names = []
for d in dirs:
    names += [e for e in os.listdir(d) if e.endswith('.dist-info')]
print(json.dumps({'python': platform.python_version(), 'executable': sys.executable,
                  'dirs': dirs, 'dists': names}))
"""


def _path(pipeline: Pipeline, stages: list[str]) -> str | None:
    """The PATH the stages ran with: a stage's own ``env: {PATH: ...}``, else conveyor's."""
    for name in stages:
        env = dict(pipeline.stages[name].env)
        if "PATH" in env:
            return env["PATH"]
    return os.environ.get("PATH")


def environment(root: Path, path: str | None = None) -> dict[str, Any]:
    """The Python the stages ran with (``python`` on their ``PATH``) and its packages' versions.

    Probing costs one interpreter start, so the answer is kept in ``.conveyor/cache`` until the
    interpreter or one of its package folders changes (an install touches the folder).
    """
    exe = shutil.which("python", path=path) or shutil.which("python3", path=path)
    if exe is None:  # no Python on PATH: the stages ran none
        return {"python": None, "packages": {}}
    cache = root / CONTROL_DIR / "cache" / "environment.json"
    try:
        saved = json.loads(cache.read_bytes())
        if saved["key"] == _env_key(exe, saved["probe"]["dirs"]):
            return _summary(saved["probe"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        proc = subprocess.run(
            [exe, "-c", _PROBE], capture_output=True, text=True, timeout=30, cwd=root, check=True
        )
        probe = json.loads(proc.stdout)
        key = _env_key(exe, probe["dirs"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return {"python": None, "executable": exe, "packages": {}}  # not a Python we can ask
    try:
        data = json.dumps({"key": key, "probe": probe}).encode()
        atomic.write_bytes(cache, data, durable=False, parents=True)
    except OSError:
        pass  # probed again next time
    return _summary(probe)


# What can make one `python` on PATH another interpreter without the file changing (a pyenv
# shim, an activated environment).
_ENV_VARS = ("PATH", "PYTHONPATH", "PYTHONHOME", "PYENV_VERSION", "VIRTUAL_ENV", "CONDA_PREFIX")


def _env_key(exe: str, dirs: list[str]) -> str:
    parts = [exe, *(os.environ.get(v, "") for v in _ENV_VARS)]
    for p in [exe, *dirs]:
        try:
            st = os.stat(p)
            parts.append(f"{p}:{st.st_ino}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{p}:-")
    return "\0".join(parts)


def _summary(probe: dict[str, Any]) -> dict[str, Any]:
    packages: dict[str, str] = {}
    for entry in probe["dists"]:
        name, _, version = str(entry)[: -len(".dist-info")].partition("-")
        if name and version:
            packages.setdefault(_normal(name), version)  # the first on sys.path is imported
    return {
        "python": probe["python"],
        "executable": probe["executable"],
        "packages": dict(sorted(packages.items())),
    }


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
