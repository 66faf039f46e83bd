"""A stage as a task on another machine: what it is given, what it gives back, and what it does.

No shared filesystem is assumed between the driver (``conveyor run``) and the machine a stage
runs on: everything travels through the project's remote, by hash, as ``push`` and ``pull`` move
it (Metaflow's pattern).

- The driver ships the code once per run: :func:`snapshot` stores the files git tracks or would
  track (``git ls-files --cached --others --exclude-standard``: uncommitted edits included,
  ignored files and ``.conveyor`` left out) as one tree object and pushes it (pointer files,
  which a tree may not hold, go with each task as bytes). Before each stage
  :func:`ship` pushes the objects of its inputs (deps, and persistent outs) that the remote may
  lack.
- The task (:class:`TaskSpec` in, :class:`TaskResult` out) runs :func:`run_task` on a worker: in
  a working copy of its own under the node's folder, it checks out the code tree, then each
  input by hash, deletes the outs, runs the commands as the local pool does (under the
  supervisor, output lines to a :class:`~conveyor.pipeline.executor.Sink`), stores the outs in
  the node's cache, pushes them and returns their hashes. It writes no lock and no run-cache
  entry: the driver does, after fetching the outs by hash (:func:`outcome` maps a result back).

Everything here is plain Python; :mod:`conveyor.pipeline.ray_executor` is the Ray glue.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.data import build, transfer
from conveyor.data.pointer import SUFFIX
from conveyor.data.remote import Remote, RemoteSpec
from conveyor.data.remotes import open_spec
from conveyor.data.tree import Entry, Tree
from conveyor.data.workspace import Workspace
from conveyor.foundation import atomic, git
from conveyor.foundation.errors import ConveyorError, PipelineError
from conveyor.foundation.lock import alive
from conveyor.foundation.paths import CONTROL_DIR, check_relative
from conveyor.pipeline.executor import CANNOT_START, Job, LocalPool, Outcome, Sink
from conveyor.pipeline.outs import clear, commit, pointer, restore
from conveyor.pipeline.stage import Meta, Out, Stage

WORKDIR_ENV = "CONVEYOR_RAY_WORKDIR"  # on a worker node: where its copies and cache live
_NOT_FORWARDED = ("CONVEYOR_ROOT", WORKDIR_ENV)  # the worker's own, not the driver's
_CODE = "(the code of the project)"  # how a missing code object is named in messages


@dataclass(frozen=True)
class Code:
    """The project's code as a worker gets it: a tree object on the remote, and the few files
    a tree may not hold (pointer files, ``*.cvy``: checkout never writes one), as bytes."""

    tree: Meta
    files: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class TaskSpec:
    """Everything a worker needs to run one stage; no path of the driver's machine in it."""

    run_id: str
    stage: str
    commands: tuple[str, ...]
    wdir: str  # relative to the project root; "" is the root
    env: tuple[tuple[str, str], ...]  # the stage's env: and the run's CONVEYOR_* variables
    code: Code
    inputs: tuple[tuple[str, Meta], ...]  # checked out by hash before the command runs
    outs: tuple[Out, ...]
    remote: RemoteSpec


TAIL_CHARS = 20_000  # of a failed stage's last lines, as the worker reports them


@dataclass(frozen=True)
class TaskResult:
    """What a worker reports: the command's outcome and, on success, its outs by hash."""

    stage: str
    code: int
    duration: float
    tail: str
    outs: tuple[tuple[str, Meta], ...] | None = None  # None: the stage did not succeed
    node: str = ""
    records: tuple[tuple[str, bytes], ...] = ()  # spool files the stage's Python API wrote


def task_spec(job: Job, run_id: str, code: Code, remote: RemoteSpec) -> TaskSpec:
    """The task for ``job`` (which must carry its stage's definition)."""
    stage = job.definition
    if stage is None:
        raise ValueError(f"job {job.stage!r} has no stage definition: the Ray executor needs it")
    env = dict(stage.env)
    for key, value in job.env.items():
        if key.startswith("CONVEYOR_") and key not in _NOT_FORWARDED:
            env[key] = value
    return TaskSpec(
        run_id,
        job.stage,
        job.commands,
        stage.wdir,
        tuple(sorted(env.items())),
        code,
        job.inputs,
        stage.outs,
        remote,
    )


def outcome(result: TaskResult, stage: Stage | None) -> Outcome:
    """How the runner sees a worker's result (the outs are fetched into the cache first): of
    the outs it reports, only the stage's declared ones (a worker is not trusted to name
    paths), its tail cut to ``TAIL_CHARS``."""
    outs = None
    if result.outs is not None:
        declared = {o.path for o in stage.outs} if stage is not None else set()
        outs = {path: meta for path, meta in result.outs if path in declared}
    tail = result.tail[-TAIL_CHARS:]
    return Outcome(result.stage, result.code, result.duration, tail, outs)


def task_options(resources: Iterable[tuple[str, float]], max_retries: int) -> dict[str, Any]:
    """Ray's options for a stage's task: its ``resources:`` and the retries on a lost node.

    >>> task_options([("cpus", 2.0), ("memory", 4e9)], 3)
    {'num_cpus': 2.0, 'max_retries': 3, 'memory': 4000000000}
    """
    wanted = dict(resources)
    options: dict[str, Any] = {"num_cpus": wanted.get("cpus", 1.0), "max_retries": max_retries}
    if wanted.get("gpus"):
        options["num_gpus"] = wanted["gpus"]
    if wanted.get("memory"):
        options["memory"] = int(wanted["memory"])
    return options


def stage_env(worker: Mapping[str, str], spec: TaskSpec, copy: Path) -> dict[str, str]:
    """The command's environment on the worker: the worker's own, then the stage's."""
    return {**worker, **dict(spec.env), "CONVEYOR_ROOT": str(copy)}


# -- the driver's side -----------------------------------------------------------------------


def snapshot(ws: Workspace) -> Code:
    """The files git tracks or would track: stored in the cache as one tree (not pushed), but
    for pointer files, which travel as bytes."""
    listed = git.run(ws.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    rels = sorted({r for r in listed.decode().split("\0") if r})
    entries: list[Entry] = []
    files: list[tuple[str, bytes]] = []
    with ws.odb.batch() as batch:
        for rel in rels:
            path = ws.root / rel
            if rel.split("/")[0] == CONTROL_DIR or not path.is_file():
                continue  # conveyor's own files, or deleted in the workspace
            if path.is_symlink() and not path.resolve().is_relative_to(ws.root.resolve()):
                raise PipelineError(
                    f"{rel} links outside the project ({path.resolve()}): its target would be "
                    "sent to the remote and every worker",
                    hint="replace the link by the file, or leave it out of git",
                )
            if rel.endswith(SUFFIX):
                files.append((rel, path.read_bytes()))
                continue
            built = build.scan(ws.root, path, ws.memo, store=batch)
            executable = bool(path.stat().st_mode & 0o100)
            entries.append(Entry(rel, built.oid, built.size, executable))
        tree = Tree.of(entries)
        oid = batch.add_bytes(tree.to_bytes())
    return Code(Meta(oid + ".tree", tree.size, len(entries)), tuple(files))


def check_out_code(ws: Workspace, code: Code, copy_rel: str) -> None:
    """Write the code (its objects in ``ws``'s cache) into the folder ``copy_rel``."""
    restore(ws, {copy_rel: code.tree})
    for rel, data in code.files:
        check_relative(rel, where="the code snapshot")
        path = ws.root / copy_rel / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def ship(ws: Workspace, remote: Remote, metas: Mapping[str, Meta], known: set[str]) -> None:
    """Push what ``metas`` (path -> meta) name and the remote may lack; ``known`` holds the
    hashes already there (this run pushed them, or a worker did), and gains these."""
    wanted = {p: m for p, m in metas.items() if m.hash not in known}
    if not wanted:
        return
    with ws.odb.batch() as batch:
        for rel, meta in wanted.items():
            path = ws.root / rel
            if not _cached(ws, meta) and os.path.lexists(path):
                # A plain file or folder (git's, or ignored and never added): stored first.
                build.scan(ws.root, path, ws.memo, store=batch, jobs=ws.jobs)
    moved(ws, remote, wanted, "the stage's inputs could not be sent to", push=True)
    known.update(m.hash for m in wanted.values())


def _cached(ws: Workspace, meta: Meta) -> bool:
    from conveyor.data.status import cache_lacks

    return cache_lacks(ws, pointer(ws.root, "_", meta)) == 0


def fetch_outs(ws: Workspace, remote: Remote, outs: Mapping[str, Meta]) -> None:
    """Bring the objects of a worker's outs into the driver's cache (not checked out)."""
    moved(ws, remote, outs, "the stage's outs could not be fetched from", push=False)


def moved(
    ws: Workspace, remote: Remote, metas: Mapping[str, Meta], failed: str, *, push: bool
) -> None:
    """Push ``metas``' objects to ``remote`` (or fetch them from it); a PipelineError that
    begins with ``failed`` ("the stage's inputs could not be sent to") when some did not move."""
    pointers = [pointer(ws.root, rel, meta) for rel, meta in sorted(metas.items())]
    result = (transfer.push if push else transfer.fetch)(ws, remote, pointers)
    problem = result.error()
    if problem is not None:
        raise PipelineError(
            f"{failed} remote {remote.name!r}: {problem.message}", hint=problem.hint
        )


def keep_records(ws: Workspace, records: Iterable[tuple[str, bytes]]) -> None:
    """Spool files a stage wrote on its worker, handed to this project's spool as they are."""
    for name, data in records:
        if "/" in name or not name.endswith(".jsonl"):
            continue
        atomic.write_bytes(ws.paths.control / "spool" / name, data, parents=True)


# -- the worker's side -----------------------------------------------------------------------


def workdir() -> Path:
    """Where a worker node keeps its working copies and its object cache."""
    base = os.environ.get(WORKDIR_ENV) or os.path.join(tempfile.gettempdir(), "conveyor-ray")
    return Path(base)


def new_copy(base: Path, node: str, label: str) -> tuple[Path, str]:
    """This node's folder under ``base`` (its copies of dead processes removed) and the path
    in it of a new working copy for ``label`` (a stage, a trial)."""
    root = base / f"node-{node[:16] or 'local'}"
    (root / CONTROL_DIR).mkdir(parents=True, exist_ok=True)
    remove_dead_copies(root / "work")
    return root, f"work/{os.getpid()}-{label}-{secrets.token_hex(3)}"


def run_task(spec: TaskSpec, base: Path, node: str, sink: Sink) -> TaskResult:
    """Run ``spec``'s stage in a new working copy under ``base/node-NODE``; never raises for
    the stage's own failures (they are in the result), only for this machine's."""
    start = time.monotonic()
    root, copy_rel = new_copy(base, node, spec.stage)
    copy = root / copy_rel
    log = root / "work" / f"{copy.name}.log"

    def failed(code: int, exc: ConveyorError) -> TaskResult:
        reason = exc.message + (f"\n  hint: {exc.hint}" if exc.hint else "")
        reason = reason.replace(copy_rel + "/", "")  # paths as the project names them
        sink.line(spec.stage, reason, True)
        return TaskResult(spec.stage, code, time.monotonic() - start, reason, node=node)

    ws = Workspace(root)
    try:
        remote = open_spec(spec.remote, jobs=ws.jobs)
        try:
            _check_out(ws, remote, spec, copy_rel)
        except ConveyorError as exc:
            return failed(CANNOT_START, exc)
        env = stage_env(os.environ, spec, copy)
        pool = LocalPool(1, sink, detach=True)  # Ray SIGKILLs a dead worker's children
        try:
            pool.submit(Job(spec.stage, spec.commands, copy / spec.wdir, env, log))
            (done,) = pool.wait()
        finally:
            pool.stop()
        records = spooled(copy)
        if done.code != 0:
            return TaskResult(spec.stage, done.code, done.duration, done.tail, None, node, records)
        try:
            outs = _store_outs(ws, remote, spec.outs, copy_rel)
        except ConveyorError as exc:
            return failed(1, exc)
        return TaskResult(spec.stage, 0, done.duration, done.tail, outs, node, records)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        ws.odb.release_tmp()
        ws.close()


def fetch_copy(
    ws: Workspace,
    remote: Remote,
    code: Code,
    files: Iterable[tuple[str, Meta]],
    copy_rel: str,
    what: str,
) -> None:
    """The code, then ``files`` (paths in the copy) by hash, fetched from ``remote`` and checked
    out into the working copy ``copy_rel``: a stage's inputs, a trial's data."""
    placed = {f"{copy_rel}/{rel}": meta for rel, meta in files}
    pointers = [pointer(ws.root, copy_rel, code.tree)]
    pointers += [pointer(ws.root, r, m) for r, m in sorted(placed.items())]
    problem = transfer.fetch(ws, remote, pointers).error()
    if problem is not None:
        raise PipelineError(
            f"{what} could not be fetched on the worker: "
            f"{problem.message.replace(copy_rel + '/', '').replace(copy_rel, _CODE)}",
            hint="push them (`conveyor push`), and check that every node reaches the remote",
        )
    check_out_code(ws, code, copy_rel)
    restore(ws, placed)


def _check_out(ws: Workspace, remote: Remote, spec: TaskSpec, copy_rel: str) -> None:
    """The code, then every input by hash, into the copy; the outs deleted."""
    fetch_copy(ws, remote, spec.code, spec.inputs, copy_rel, "the stage's code and inputs")
    (ws.root / copy_rel / CONTROL_DIR).mkdir(exist_ok=True)
    outs = tuple(o._replace(path=f"{copy_rel}/{o.path}") for o in spec.outs)
    clear(ws.root, outs)  # a persistent one is kept (its folder made)


def _store_outs(
    ws: Workspace, remote: Remote, outs: tuple[Out, ...], copy_rel: str
) -> tuple[tuple[str, Meta], ...]:
    placed = tuple(o._replace(path=f"{copy_rel}/{o.path}") for o in outs)
    metas = commit(ws, placed)
    moved(ws, remote, metas, "the stage's outs could not be pushed to", push=True)
    prefix = copy_rel + "/"
    return tuple(sorted((rel.removeprefix(prefix), meta) for rel, meta in metas.items()))


def spooled(copy: Path) -> tuple[tuple[str, bytes], ...]:
    folder = copy / CONTROL_DIR / "spool"
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".jsonl"))
    except FileNotFoundError:
        return ()
    return tuple((n, (folder / n).read_bytes()) for n in names)


def remove_dead_copies(work: Path) -> None:
    """Working copies whose worker process died (a cancelled or lost task) are removed."""
    try:
        entries = list(os.scandir(work))
    except FileNotFoundError:
        return
    for entry in entries:
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
