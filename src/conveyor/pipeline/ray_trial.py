"""A tuning trial as a task on another machine: the whole pipeline with the trial's params.

The driver (``conveyor tune --executor ray``) asks Optuna for a trial and tells it the result;
the trial runs on a worker as ``python -m conveyor.pipeline STAGES -S KEY=VALUE...`` in a working
copy of its own, made from the project's remote by hash (the code snapshot of
:mod:`conveyor.pipeline.ray_task`, the data its pointers name and the outs ``conveyor.lock``
records, so that stages the trial's params do not reach are up to date there, not re-run). The
worker returns the metrics, the run record (the copy's spool files, which the driver puts in the
project's spool) and the run-cache entries the trial made, whose outs it pushes: the driver
fetches them and keeps the entries, so ``conveyor run`` after ``tune show --apply`` restores
the best trial's outs instead of running it again.

Plain Python, no Ray: :mod:`conveyor.pipeline.ray_executor` runs :func:`run_trial` as a task.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.data import transfer
from conveyor.data.hashing import object_path
from conveyor.data.remote import RemoteSpec
from conveyor.data.remotes import open_spec
from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import ConveyorError, PipelineError
from conveyor.foundation.paths import CONTROL_DIR
from conveyor.pipeline import definition, runcache
from conveyor.pipeline import metrics as metrics_mod
from conveyor.pipeline.executor import CANNOT_START
from conveyor.pipeline.outs import pointer
from conveyor.pipeline.ray_task import Code, fetch_copy, new_copy, spooled
from conveyor.pipeline.stage import Meta

_TAIL = 20  # lines of a failed trial's output kept


@dataclass(frozen=True)
class TrialSpec:
    number: int
    args: tuple[str, ...]  # of python -m conveyor.pipeline: stages, --name, -S overrides
    env: tuple[tuple[str, str], ...]  # the run's tags and kind, the pruner's variables
    code: Code
    data: tuple[tuple[str, Meta], ...]  # pointers' data and the lock's outs, by path
    remote: RemoteSpec


@dataclass(frozen=True)
class TrialResult:
    number: int
    code: int  # the pipeline process's exit code
    output: str  # the end of what it printed
    metrics: tuple[tuple[str, Any], ...] = ()  # by the names a user types (eval.auc)
    records: tuple[tuple[str, bytes], ...] = ()
    runs: tuple[tuple[str, bytes], ...] = ()  # run-cache entries: key, the entry as stored


def run_trial(spec: TrialSpec, base: Path, node: str) -> TrialResult:
    """Run the trial in a new working copy under ``base/node-NODE``."""
    root, copy_rel = new_copy(base, node, f"trial{spec.number}")
    copy = root / copy_rel
    ws = Workspace(root)
    try:
        remote = open_spec(spec.remote, jobs=ws.jobs)
        try:
            _check_out(ws, remote, spec, copy_rel)
        except ConveyorError as exc:
            return TrialResult(spec.number, CANNOT_START, exc.message.replace(copy_rel + "/", ""))
        (copy / CONTROL_DIR).mkdir(exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "conveyor.pipeline", *spec.args],
            cwd=copy,
            env={**os.environ, **dict(spec.env)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        output = "\n".join(proc.stdout.decode(errors="replace").splitlines()[-_TAIL:])
        records = spooled(copy)
        if proc.returncode != 0:
            return TrialResult(spec.number, proc.returncode, output, records=records)
        values = metrics_mod.read(copy, metrics_mod.metric_files(definition.load(copy)))
        try:
            runs = _push_runs(copy, remote)
        except ConveyorError as exc:
            return TrialResult(spec.number, 1, exc.message, records=records)
        return TrialResult(spec.number, 0, output, tuple(values.items()), records, runs)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
        ws.odb.release_tmp()
        ws.close()


def _check_out(ws: Workspace, remote: Any, spec: TrialSpec, copy_rel: str) -> None:
    fetch_copy(ws, remote, spec.code, spec.data, copy_rel, "the trial's code and data")
    # The pipeline in the copy checks its data against its own cache: the objects go there too
    # (hard links into the node's cache: the same immutable files).
    target = ws.root / copy_rel / CONTROL_DIR / "cache" / "objects"
    data = [pointer(ws.root, f"{copy_rel}/{rel}", meta) for rel, meta in spec.data]
    for oid in sorted(transfer.collect(ws, data).all()):
        dest = target / object_path(oid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(ws.odb.path(oid), dest)
        except OSError:
            shutil.copy2(ws.odb.path(oid), dest)


def _push_runs(copy: Path, remote: Any) -> tuple[tuple[str, bytes], ...]:
    """The run-cache entries the trial made (its copy's, as stored), their outs pushed."""
    cache = runcache.FolderRunCache(copy / CONTROL_DIR / "cache" / "runs")
    entries: list[tuple[str, bytes]] = []
    metas: dict[str, Meta] = {}
    for key in cache.iter_keys():
        try:
            raw = cache.path(key).read_bytes()
            entry = runcache.parse(key, raw)
        except (OSError, runcache.BadEntry):
            continue
        entries.append((key, raw))
        metas.update({f"{key[:8]}/{p}": m for p, m in entry.outs.items()})
    if not entries:
        return ()
    with Workspace(copy) as ws:
        pointers = [pointer(ws.root, r, m) for r, m in sorted(metas.items())]
        problem = transfer.push(ws, remote, pointers).error()
        if problem is not None:
            raise PipelineError(f"the trial's outs could not be pushed: {problem.message}")
    return tuple(entries)
