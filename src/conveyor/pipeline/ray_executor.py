"""Stages as Ray tasks: the :class:`~conveyor.pipeline.executor.Executor` for a Ray cluster.

The only module that imports Ray (``pip install 'conveyor[ray]'``); it is imported when a run
asks for it (``--executor ray`` or ``executor:`` in conveyor.yaml), never by ``--help``.

Each stage is one Ray task (:func:`_stage_task`) running
:func:`conveyor.pipeline.ray_task.run_task` on a worker: its own working copy, data in and out
through the project's remote by hash. The driver (this process) keeps every decision and every
write of the lock, the run-cache and the run record, as with the local pool:

- The first stage connects (``ray.init``: the executor's address, else ``$RAY_ADDRESS``, else
  a local Ray started for the run and stopped after it), pushes the code snapshot, and starts a
  :class:`_Relay` actor (no CPU) that carries output lines from the workers.
- ``submit`` pushes what the stage's inputs need and starts its task with the stage's
  ``resources:`` (``num_cpus``, ``num_gpus``, ``memory``) and ``max_retries``: Ray runs a task
  whose worker or node is lost again elsewhere, at most that often.
- ``wait`` relays output lines (to the :class:`Sink`, with the stage's name, and to the stage's
  log under ``.conveyor/logs/RUN``) until a task ends, fetches its outs into the cache by hash
  and returns its :class:`Outcome` with them; the runner checks them out and writes the lock.
- ``stop`` cancels what still runs with ``force=True``: Ray kills the worker processes, and the
  supervisor of each stage command (:mod:`conveyor.pipeline.supervise`) kills what the command
  started when its pipe from the dead worker closes.

``submit``, ``wait``, ``stop`` and ``busy`` are for one (the caller's) thread only.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import ray
from ray import exceptions as ray_errors

from conveyor.data.remote import Remote, RemoteSpec
from conveyor.data.remotes import open_spec, resolve
from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import ConfigError, ConveyorError, PipelineError
from conveyor.pipeline import ray_task, ray_trial
from conveyor.pipeline.executor import Job, Outcome, Sink
from conveyor.pipeline.stage import Meta

_POLL = 0.05  # seconds between looks at the relay while stages run
_FLUSH = 0.1  # seconds a worker gathers output lines before sending them


class Relay:
    """Output lines from the workers, held until the driver takes them (in order per stage)."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str, str, bool]] = []  # (stage, kind, text, err)

    def put(self, items: list[tuple[str, str, str, bool]]) -> None:
        self._items.extend(items)

    def take(self) -> list[tuple[str, str, str, bool]]:
        items, self._items = self._items, []
        return items


# A relay whose node is lost comes back (empty) elsewhere: lines in flight are lost, the run
# goes on.
_Relay: Any = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(Relay)


class _RelaySink:
    """A worker's :class:`Sink`: lines gathered for :data:`_FLUSH` seconds, then sent in one
    call. Never raises (a lost relay only loses lines); :meth:`close` sends what is left."""

    def __init__(self, relay: Any, stage: str, node: str) -> None:
        self._relay = relay
        self._stage = stage
        self._lock = threading.Lock()
        self._items: list[tuple[str, str, str, bool]] = [(stage, "start", node, False)]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._send()
        self._thread.start()

    def line(self, stage: str, text: str, err: bool) -> None:
        with self._lock:
            self._items.append((stage, "line", text, err))

    def _send(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        if items:
            with contextlib.suppress(Exception):
                ray.get(self._relay.put.remote(items))

    def _loop(self) -> None:
        while not self._closed.wait(_FLUSH):
            self._send()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self._send()


@ray.remote
def _stage_task(spec: ray_task.TaskSpec, relay: Any) -> ray_task.TaskResult:
    node = ray.get_runtime_context().get_node_id()
    sink = _RelaySink(relay, spec.stage, node)
    try:
        return ray_task.run_task(spec, ray_task.workdir(), node, sink)
    finally:
        sink.close()


@dataclass
class _Running:
    job: Job
    log: IO[str] | None
    started: float
    nodes: list[str] = field(default_factory=list)  # one per attempt


class RayExecutor:
    """Runs jobs as Ray tasks; see the module docstring. ``jobs`` > 0 bounds the stages at once
    (0: as many as the cluster's resources allow, Ray queues the rest)."""

    def __init__(
        self,
        ws: Workspace,
        sink: Sink,
        *,
        address: str = "",
        remote: str = "",
        max_retries: int = 3,
        jobs: int = 0,
    ) -> None:
        self.ws = ws
        self.sink = sink
        self.address = address  # "": $RAY_ADDRESS, else a local Ray started for the run
        self.remote = remote  # "": core.remote
        self.max_retries = max_retries
        self.jobs = jobs
        self._running: dict[Any, _Running] = {}  # ObjectRef -> its stage
        self._queue: deque[Job] = deque()
        self._connected = False
        self._owns_ray = False
        self._relay: Any = None
        self._remote: Remote | None = None
        self._remote_spec: RemoteSpec | None = None
        self._code: ray_task.Code | None = None
        self._on_remote: set[str] = set()  # hashes known to be on the remote
        self._stopped = False

    @property
    def busy(self) -> int:
        return len(self._running) + len(self._queue)

    def submit(self, job: Job) -> None:
        if self._stopped:
            raise RuntimeError(f"cannot submit stage {job.stage!r}: the executor is stopped")
        self._connect()
        if self.jobs and len(self._running) >= self.jobs:
            self._queue.append(job)
            return
        self._launch(job)

    def wait(self) -> list[Outcome]:
        while self._running:
            refs = list(self._running)
            ready, rest = ray.wait(refs, num_returns=1, timeout=_POLL)
            if ready and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                ready += more
            self._relay_lines()  # a task's last lines are sent before it returns
            if ready:
                outcomes = [self._finish(ref) for ref in ready]
                while self._queue and (not self.jobs or len(self._running) < self.jobs):
                    self._launch(self._queue.popleft())
                return outcomes
        return []

    def stop(self, grace: float = 5.0) -> None:
        self._stopped = True
        self._queue.clear()
        refs = list(self._running)
        _cancel(refs, grace)
        if refs:
            with contextlib.suppress(Exception):
                self._relay_lines()
        for running in self._running.values():
            if running.log is not None:
                running.log.close()
        self._running.clear()
        if self._relay is not None:
            with contextlib.suppress(Exception):
                ray.kill(self._relay)
            self._relay = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    # -- connecting ------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._connected:
            return
        self._remote_spec = remote_of(self.ws, self.remote)
        if not ray.is_initialized():
            init_ray(self.address)
            self._owns_ray = True
        self._relay = _Relay.options(**_on_this_node()).remote()
        self._remote = open_spec(self._remote_spec, jobs=self.ws.jobs)
        self._code = ray_task.snapshot(self.ws)
        ray_task.ship(self.ws, self._remote, {"": self._code.tree}, self._on_remote)
        self._connected = True

    # -- one stage -------------------------------------------------------------------------

    def _launch(self, job: Job) -> None:
        assert self._remote is not None and self._code is not None
        stage = job.definition
        if stage is None:
            raise ValueError(f"job {job.stage!r} has no stage definition: the runner gives one")
        ray_task.ship(self.ws, self._remote, dict(job.inputs), self._on_remote)
        assert self._remote_spec is not None
        run_id = job.env.get("CONVEYOR_RUN_ID", "")
        spec = ray_task.task_spec(job, run_id, self._code, self._remote_spec)
        options = ray_task.task_options(stage.resources, self.max_retries)
        ref = _stage_task.options(**options).remote(spec, self._relay)
        self._running[ref] = _Running(job, _open_log(job), time.monotonic())

    def _finish(self, ref: Any) -> Outcome:
        running = self._running.pop(ref)
        stage = running.job.stage
        took = time.monotonic() - running.started
        try:
            result: ray_task.TaskResult = ray.get(ref)
        except ray_errors.TaskCancelledError:
            return self._ended(running, Outcome(stage, -signal.SIGKILL, took, "cancelled"))
        except ray_errors.RayTaskError as exc:  # conveyor's own code failed on the worker
            reason = f"internal error on the worker: {exc.cause!r}"
            return self._ended(running, Outcome(stage, 1, took, reason))
        except ray_errors.RayError as exc:  # a worker or node lost more often than retried
            tries = self.max_retries + 1
            reason = (
                f"its worker was lost {tries} time(s) (executor.max_retries is "
                f"{self.max_retries}): {type(exc).__name__}: {str(exc).splitlines()[0]}"
            )
            self.sink.line(stage, reason, True)
            return self._ended(running, Outcome(stage, 1, took, reason))
        ray_task.keep_records(self.ws, result.records)
        outcome = ray_task.outcome(result, running.job.definition)
        if outcome.outs is not None:
            assert self._remote is not None
            try:
                ray_task.fetch_outs(self.ws, self._remote, outcome.outs)
            except ConveyorError as exc:
                self.sink.line(stage, exc.message, True)
                outcome = outcome._replace(code=1, tail=exc.message, outs=None)
            else:
                self._on_remote.update(m.hash for m in dict(result.outs or ()).values())
        return self._ended(running, outcome)

    def _ended(self, running: _Running, outcome: Outcome) -> Outcome:
        if running.log is not None:
            running.log.close()
        return outcome

    def _relay_lines(self) -> None:
        if self._relay is None:
            return
        try:
            items = ray.get(self._relay.take.remote(), timeout=30)
        except ray_errors.RayError:  # its node is lost and it is coming back elsewhere
            return
        by_stage = {r.job.stage: r for r in self._running.values()}
        for stage, kind, text, err in items:
            running = by_stage.get(stage)
            if kind == "start":
                if running is not None:
                    running.nodes.append(text)
                    if len(running.nodes) > 1:
                        note = (
                            f"its worker was lost: running it again on node {text[:12]} "
                            f"(attempt {len(running.nodes)} of {self.max_retries + 1})"
                        )
                        self.sink.line(stage, note, True)
                        _write(running.log, f"== {note} ==")
                continue
            self.sink.line(stage, text, err)
            if running is not None:
                _write(running.log, text)


@ray.remote
def _trial_task(spec: ray_trial.TrialSpec) -> ray_trial.TrialResult:
    node = ray.get_runtime_context().get_node_id()
    return ray_trial.run_trial(spec, ray_task.workdir(), node)


class TrialPool:
    """Tuning trials as Ray tasks (:mod:`conveyor.pipeline.ray_trial`), for a search whose
    asking and telling stay with the caller. ``start`` ships the code and data once; ``submit``
    starts a trial; ``wait`` returns the trials that ended, each with its result or the reason
    it has none; ``stop`` cancels the rest (their processes are killed) and fetches nothing."""

    def __init__(
        self, ws: Workspace, *, address: str = "", remote: str = "", max_retries: int = 3
    ) -> None:
        self.ws = ws
        self.address = address
        self.max_retries = max_retries
        self._remote_spec = remote_of(ws, remote)
        self._remote = open_spec(self._remote_spec, jobs=ws.jobs)
        self._owns_ray = False
        self._running: dict[Any, int] = {}  # ObjectRef -> trial number
        self._code: ray_task.Code | None = None
        self._data: tuple[tuple[str, Meta], ...] = ()

    def start(self, data: dict[str, Meta]) -> None:
        """Connect, and push the code snapshot and ``data`` (path -> meta) to the remote."""
        if not ray.is_initialized():
            init_ray(self.address)
            self._owns_ray = True
        self._code = ray_task.snapshot(self.ws)
        ray_task.ship(self.ws, self._remote, {"": self._code.tree, **data}, set())
        self._data = tuple(sorted(data.items()))

    def submit(self, number: int, args: list[str], env: dict[str, str]) -> None:
        assert self._code is not None, "start() first"
        spec = ray_trial.TrialSpec(
            number,
            tuple(args),
            tuple(sorted(env.items())),
            self._code,
            self._data,
            self._remote_spec,
        )
        ref = _trial_task.options(num_cpus=1, max_retries=self.max_retries).remote(spec)
        self._running[ref] = number

    @property
    def busy(self) -> int:
        return len(self._running)

    def wait(self) -> list[tuple[int, ray_trial.TrialResult | str]]:
        """The trials that ended (at least one, while any runs)."""
        if not self._running:
            return []
        ready, _ = ray.wait(list(self._running), num_returns=1)
        ended: list[tuple[int, ray_trial.TrialResult | str]] = []
        for ref in ready:
            number = self._running.pop(ref)
            try:
                result: ray_trial.TrialResult = ray.get(ref)
            except ray_errors.RayError as exc:
                ended.append((number, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
                continue
            ray_task.keep_records(self.ws, result.records)
            try:
                keep_runs(self.ws, self._remote, result.runs)
            except ConveyorError as exc:  # the trial counts; its outs are not restorable
                ended.append((number, result))
                logging.getLogger(__name__).warning("trial %d: %s", number, exc.message)
                continue
            ended.append((number, result))
        return ended

    def stop(self) -> None:
        _cancel(list(self._running), 10.0)
        self._running.clear()
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


def _cancel(refs: list[Any], grace: float) -> None:
    """Cancel the tasks ``refs`` (their processes killed) and give them ``grace`` seconds to
    end; nothing raises (a node may be gone already)."""
    for ref in refs:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)
    if refs:
        with contextlib.suppress(Exception):
            ray.wait(refs, num_returns=len(refs), timeout=grace)


def keep_runs(ws: Workspace, remote: Remote, runs: tuple[tuple[str, bytes], ...]) -> None:
    """A trial's run-cache entries, kept here once their outs are in the cache."""
    from conveyor.pipeline import runcache

    cache = runcache.FolderRunCache(ws.paths.cache / "runs")
    for key, raw in runs:
        entry = runcache.parse(key, raw)  # checked as any entry from elsewhere
        metas = {f"{key[:8]}/{path}": meta for path, meta in entry.outs.items()}
        ray_task.fetch_outs(ws, remote, metas)
        cache.write(entry)


def remote_of(ws: Workspace, name: str) -> RemoteSpec:
    """The remote data travels through: ``name``, else the default one."""
    try:
        return resolve(ws.config, ws.root, name or None)
    except ConfigError as exc:
        raise ConfigError(
            f"the Ray executor moves data through a remote: {exc.message}", hint=exc.hint
        ) from None


def init_ray(address: str) -> None:
    """Connect to Ray at ``address`` ("": $RAY_ADDRESS, else start a local Ray)."""
    try:
        with _signals_kept():
            ray.init(
                address=address or None,
                log_to_driver=False,  # stage output comes through the relay, with its prefix
                include_dashboard=False,
                logging_level=logging.ERROR,  # not its notes on a local cluster it starts
            )
    except Exception as exc:  # ConnectionError, RuntimeError, grpc's: all mean "not there"
        where = address or "a local Ray (or $RAY_ADDRESS)"
        raise PipelineError(
            f"cannot start or reach Ray at {where}: {exc}",
            hint="check the address (ray://HOST:10001, the cluster's client port), or run "
            "with --executor local",
        ) from exc


@contextlib.contextmanager
def _signals_kept() -> Iterator[None]:
    """Ray's start installs handlers of its own for SIGTERM and SIGINT (log, then exit 1); the
    run's (stop every stage, exit 130) are put back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            if handler is not None:
                signal.signal(signum, handler)


def _on_this_node() -> dict[str, Any]:
    """Scheduling options that keep an actor on the driver's node when Ray can say which."""
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = ray.get_runtime_context().get_node_id()
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True)}
    except Exception:  # Ray Client: the driver is on no node of the cluster
        return {}


def _open_log(job: Job) -> IO[str] | None:
    try:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        log = job.log.open("w", encoding="utf-8")
    except OSError:
        return None
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    _write(log, f"== stage {job.stage} started {now} (Ray) ==")
    return log


def _write(log: IO[str] | None, text: str) -> None:
    if log is not None:
        log.write(text + "\n")
        log.flush()
