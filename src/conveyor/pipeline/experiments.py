"""Experiments: pipeline runs with param overrides, run now, or queued and run later each in
an isolated copy of the workspace.

A copy lives under ``.conveyor/exps/ID`` (the same filesystem as the cache, so objects move in
by rename): the files git tracks or would track (uncommitted edits included), a ``.conveyor``
of its own whose object cache, spool and logs are the project's own (symlinks), and the data
checked out from the shared cache. ``conveyor run`` there restores what the workspace's lock
already has, runs the rest, and its run lands in the project's store like any other.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from conveyor.foundation import atomic, git
from conveyor.foundation.errors import PipelineError
from conveyor.pipeline.record import KIND_ENV

SHARED = ("cache", "spool", "logs")  # what a copy's .conveyor links to in the project's


class Queued(NamedTuple):
    id: str
    name: str
    overrides: list[str]  # -S arguments, as typed
    stages: list[str]
    queued: float

    def args(self) -> list[str]:
        """The arguments of ``python -m conveyor.pipeline`` that run this experiment."""
        out = [*self.stages, "--name", self.name or self.id]
        for item in self.overrides:
            out += ["-S", item]
        return out


def queue_dir(root: Path) -> Path:
    return root / ".conveyor" / "queue"


def enqueue(root: Path, overrides: list[str], stages: list[str], name: str) -> Queued:
    item = Queued(
        time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3), name, overrides, stages, time.time()
    )
    atomic.write_text(queue_dir(root) / f"{item.id}.json", json.dumps(item._asdict()), parents=True)
    return item


def queued(root: Path) -> list[Queued]:
    folder = queue_dir(root)
    if not folder.is_dir():
        return []
    items = []
    for path in sorted(folder.glob("*.json")):
        try:
            items.append(Queued(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError) as exc:
            raise PipelineError(
                f"queued experiment {path.name} is unreadable ({exc})",
                hint=f"remove {path} and queue it again",
            ) from exc
    return items


def dequeue(root: Path, item: Queued) -> None:
    (queue_dir(root) / f"{item.id}.json").unlink(missing_ok=True)


def make_copy(root: Path, item_id: str) -> Path:
    """An isolated workspace for one experiment, sharing the project's cache and store."""
    if not item_id or "/" in item_id or item_id.startswith("."):
        raise PipelineError(
            f"{item_id!r} cannot name an experiment folder", hint="use a plain name"
        )
    copy = root / ".conveyor" / "exps" / item_id
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir(parents=True)
    listed = git.run(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for rel in filter(None, listed.decode().split("\0")):
        src = root / rel
        if rel.startswith(".conveyor/") or not src.is_file():
            continue  # deleted in the workspace, or conveyor's own files
        dst = copy / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    control = copy / ".conveyor"
    control.mkdir(exist_ok=True)
    for name in ("config", "config.local", ".gitignore"):
        if (root / ".conveyor" / name).exists():
            shutil.copy2(root / ".conveyor" / name, control / name)
    for name in SHARED:
        (root / ".conveyor" / name).mkdir(parents=True, exist_ok=True)
        os.symlink(root / ".conveyor" / name, control / name)
    return copy


def start(
    root: Path, item: Queued, env: dict[str, str], *, kind: str = "experiment"
) -> tuple[Path, subprocess.Popen[bytes]]:
    """Make the copy, and start the pipeline there in a process of its own (which checks the
    data out first): :mod:`conveyor.pipeline.__main__`."""
    copy = make_copy(root, item.id)
    child_env = {**env, KIND_ENV: kind, "CONVEYOR_EXPERIMENT": item.id}
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor.pipeline", *item.args()],
        cwd=copy,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return copy, proc


def remove_copy(copy: Path) -> None:
    shutil.rmtree(copy, ignore_errors=True)


class Finished(NamedTuple):
    item: Queued
    code: int  # the experiment process's exit code
    output: str  # what it printed (stdout and stderr together)


def run_queue(
    root: Path,
    *,
    jobs: int,
    env: dict[str, str],
    started: Callable[[Queued], None],
    finished: Callable[[Finished], None],
) -> list[Finished]:
    """Run every queued experiment, ``jobs`` at once, each in its own copy; each leaves the
    queue when it ends, passed or failed. ``started`` and ``finished`` hear of each (finished
    in the order they started); an interruption stops the experiments still running."""
    waiting = queued(root)
    running: list[tuple[Queued, Path, subprocess.Popen[bytes]]] = []
    done: list[Finished] = []
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                item = waiting.pop(0)
                copy, proc = start(root, item, env)
                started(item)
                running.append((item, copy, proc))
            item, copy, proc = running.pop(0)
            output, _ = proc.communicate()
            dequeue(root, item)
            remove_copy(copy)
            done.append(Finished(item, proc.returncode, output.decode(errors="replace")))
            finished(done[-1])
    finally:
        for _item, copy, proc in running:  # interrupted: they stay queued
            proc.terminate()
            proc.wait()
            remove_copy(copy)
    return done


def write_params(root: Path, values: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Set params (``train.C`` or ``other.yaml:key``) in their files; the changes made.

    Only params the pipeline declares are written, in the files it declares them in (values
    come from the metadata store, which may be shared: a name there must not choose which file
    is written); keys the files do not hold are skipped. YAML files are rewritten whole, so
    their comments are not kept.
    """
    from conveyor.pipeline import definition
    from conveyor.pipeline import params as params_mod

    declared = set(definition.load(root).values)
    by_file: dict[str, list[tuple[str, Any]]] = {}
    for name, value in values.items():
        file, key = params_mod.split_name(name)
        parts = key.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if not any((file, prefix) in declared for prefix in prefixes):
            continue  # not a param of this pipeline
        by_file.setdefault(file, []).append((key, value))
    changes: list[tuple[str, str, str]] = []
    for file, pairs in sorted(by_file.items()):
        path = root / file
        data = params_mod.load(path, file)
        before = data
        for key, value in pairs:
            old = params_mod.lookup(data, key)
            if old is params_mod.MISSING or params_mod.same(old, value):
                continue
            data = params_mod.override(data, key, value, f"run param {key}")
            shown = key if file == params_mod.DEFAULT_FILE else f"{file}:{key}"
            changes.append((shown, params_mod.show(old), params_mod.show(value)))
        if data is not before:
            atomic.write_bytes(path, params_mod.dumps(data, path.suffix.lower(), file))
    return changes
