"""The pipeline as an orchestrator's workflow: one task per stage, the remote as the exchange.

``conveyor export airflow|kubeflow`` writes Python source for an orchestrator a team already
runs (:mod:`conveyor.pipeline.export_airflow`, :mod:`conveyor.pipeline.export_kubeflow`). Every
task runs the same three commands, in the project's image or on a worker:

    conveyor pull --run-cache                                # tracked data, the others' runs
    conveyor run --single --restore-upstream STAGE           # this stage only
    conveyor push --run-cache                                # its outs and run-cache entry

Tasks share no disk: what a stage needs was pushed by its upstream tasks as run-cache entries,
and ``--restore-upstream`` restores those stages from them (never runs them again), so each
stage runs once, in its own task. A stage whose outs cannot travel that way (``always_changed``,
or a ``persist`` out: the run-cache never restores them) is refused when another stage needs it.

:func:`plan` is pure (a :class:`~conveyor.pipeline.definition.Pipeline` in, an :class:`Export`
out); :mod:`~conveyor.pipeline.export_airflow` and :mod:`~conveyor.pipeline.export_kubeflow`
turn an :class:`Export` into source text.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.foundation.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.pipeline.definition import Pipeline

KINDS = ("airflow", "kubeflow")
WORKDIR = "/project"  # where the project is in its image, unless told otherwise


@dataclass(frozen=True)
class Task:
    """One stage as a task: a safe identifier, the stages it waits for, and its commands."""

    stage: str
    task_id: str  # letters, digits and underscores: valid for Airflow, KFP and Python
    upstream: tuple[str, ...]  # stage names
    command: str  # one shell line


@dataclass(frozen=True)
class Export:
    """What an exported workflow says: its name, where tasks run, and the tasks in order."""

    name: str  # the DAG id / pipeline name
    image: str
    workdir: str  # the project's folder inside the image
    project: str  # the project's folder on this machine (local execution)
    secret: str | None  # a Kubernetes Secret holding the remote's credentials
    tasks: tuple[Task, ...]
    version: str  # conveyor's, written into the header


def plan(
    pipeline: Pipeline,
    *,
    name: str,
    image: str,
    project: str,
    remote: str | None = None,
    workdir: str = WORKDIR,
    secret: str | None = None,
    version: str = "",
) -> Export:
    """The tasks of ``pipeline`` (pure). ``remote`` names the remote the tasks exchange
    through (None: the project's default)."""
    if not pipeline.stages:
        raise ConfigError(
            "conveyor.yaml has no stages to export", hint="declare stages under `stages:`"
        )
    needed = {u for ups in pipeline.upstream.values() for u in ups}
    for stage_name in pipeline.order:
        stage = pipeline.stages[stage_name]
        why = "always_changed" if stage.always_changed else ""
        if any(o.persist for o in stage.outs):
            why = "a persist: true out"
        if why and stage_name in needed:
            raise ConfigError(
                f"conveyor.yaml:{stage.line}: stage {stage_name!r} has {why}, so the run-cache "
                "never restores it, yet another stage needs its outs: in an exported workflow "
                "each stage runs in a task of its own and gets what it needs from the run-cache",
                hint="drop always_changed / persist from it, or merge it with the stages that "
                "need it",
            )
    ids = task_ids(pipeline.order)
    r = f" -r {shlex.quote(remote)}" if remote else ""
    tasks = tuple(
        Task(
            n,
            ids[n],
            tuple(pipeline.upstream.get(n, ())),
            f"conveyor pull --run-cache{r} && "
            f"conveyor run --single --restore-upstream {shlex.quote(n)} && "
            f"conveyor push --run-cache{r}",
        )
        for n in pipeline.order
    )
    return Export(identifier(name), image, workdir, project, secret, tasks, version)


def task_ids(stages: list[str]) -> dict[str, str]:
    """A distinct identifier for each stage name (``train@lr-0.1`` -> ``train_lr_0_1``).

    >>> task_ids(["train@a-b", "train@a_b", "9x"])
    {'train@a-b': 'train_a_b', 'train@a_b': 'train_a_b_2', '9x': 's_9x'}
    """
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for stage in stages:
        base = identifier(stage)
        tid, n = base, 1
        while tid in taken:
            n += 1
            tid = f"{base}_{n}"
        taken.add(tid)
        ids[stage] = tid
    return ids


def identifier(text: str) -> str:
    """``text`` as a Python identifier: other characters become ``_``; never a leading digit."""
    ident = re.sub(r"\W", "_", text, flags=re.ASCII).strip("_") or "pipeline"
    return f"s_{ident}" if ident[0].isdigit() else ident


def file_name(kind: str, name: str) -> str:
    """The file an export of ``kind`` is written to."""
    return f"{identifier(name)}_dag.py" if kind == "airflow" else f"{identifier(name)}_kfp.py"


def write(path: Path, text: str, *, force: bool = False) -> Path:
    """Write ``text`` to ``path``; an existing file is replaced only with ``force``."""
    from conveyor.foundation import atomic

    if path.exists() and not force:
        raise ConfigError(
            f"{path} exists; not replaced", hint="add --force to replace it, or --out elsewhere"
        )
    atomic.write_text(path, text, parents=True)
    return path


def describe(export: Export) -> str:
    """One line for the workflow's description."""
    n = len(export.tasks)
    return f"conveyor pipeline {export.name}: {n} stage{'s' if n != 1 else ''}, one task each"
