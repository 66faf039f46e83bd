"""Retraining with no command typed (a monitoring alert starts it) or by hand: pull the latest
data, run the pipeline, check the gates, register the environment's model when its package
changed, and start the environment's rollout of the new version; its strategy (canary, A/B,
shadow, blue-green) takes it from there. A retrain whose gates fail stops there: nothing is
registered, production is untouched.

Every step is an event in the metadata store on the environment's subject (``deploy:<env>``),
between its rollouts' events, so ``conveyor rollout history ENV`` shows what a retrain did and
why it stopped: ``retrain.started`` (the reason), a ``retrain.step`` per step (its result and
seconds), ``retrain.registered`` when a version was, and one ending: ``retrain.rollout_started``,
``retrain.unchanged``, ``retrain.gates_failed`` or ``retrain.failed`` (the step, the error). The
events table takes any subject: no schema change, and no deployment record is needed (the
rollout the retrain starts writes the environment's first one if it has none).

:class:`Retrainer` is what a monitor holds: :meth:`Retrainer.request` starts a retrain on a
thread of its own, unless one is in flight (on this object, or anywhere that holds
``.conveyor/retrain.lock``: two servers of one project never retrain at once) or the cooldown
since the last retrain's end has not passed. That end is read back from the events, so a
restart does not reset the cooldown, and a retrain started by hand counts too. :func:`decide`
is the decision over plain values.

    >>> done = retrain(root, "production", reason="drift on mean_texture")  # doctest: +SKIP
    >>> done.outcome, done.version  # doctest: +SKIP
    ('rollout_started', 'models:/classifier/4')
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from conveyor.ci import job
from conveyor.ci.job import Step
from conveyor.foundation.errors import ConfigError, ConveyorError, LockError, PipelineError
from conveyor.foundation.lock import ProjectLock
from conveyor.foundation.paths import CONTROL_DIR

if TYPE_CHECKING:
    from conveyor.ci.check import Checked
    from conveyor.ci.pull import Pulled
    from conveyor.deploy.config import Environment
    from conveyor.foundation.progress import Progress
    from conveyor.pipeline.definition import Pipeline
    from conveyor.pipeline.launch import Launched
    from conveyor.pipeline.runner import Reporter, StageResult
    from conveyor.registry.deployment import Deployment
    from conveyor.registry.records import ModelVersion
    from conveyor.tracking.events import Event

log = logging.getLogger(__name__)

Outcome = Literal["rollout_started", "unchanged", "gates_failed", "failed"]
Clock = Callable[[], float]

# The events a retrain ends with; the latest one's time starts the cooldown.
ENDINGS = tuple(f"retrain.{o}" for o in ("rollout_started", "unchanged", "gates_failed", "failed"))
LOCK = "retrain.lock"


@dataclass(frozen=True)
class Retrained:
    """What a retrain did: how it ended, each step with its result and seconds, the version it
    registered (``models:/NAME/N``) and the rollout it started; for ``failed``, the step that
    could not be done and its error; for ``gates_failed``, the gates' results."""

    env: str
    reason: str
    outcome: Outcome
    steps: list[Step]
    started: float
    ended: float
    version: str | None = None
    rollout: Deployment | None = None
    checked: Checked | None = None
    step: str | None = None
    error: ConveyorError | None = None

    @property
    def message(self) -> str:
        """The outcome in one line, as a notification says it."""
        if self.outcome == "rollout_started" and self.rollout is not None:
            d = self.rollout
            if d.candidate is None:  # the environment's first deploy serves it at once
                return f"{self.env}: retrained; {self.version} now serves all traffic"
            return f"{self.env}: retrained; rolling out {self.version} over version {d.stable}"
        if self.outcome == "gates_failed":
            return f"{self.env}: retrain stopped, the gates failed ({_failed(self.checked)})"
        if self.outcome == "failed" and self.error is not None:
            return f"{self.env}: retrain failed at step {self.step}: {self.error.message}"
        said = next((s.result for s in self.steps if s.name == "register"), "")
        return f"{self.env}: retrained; nothing to roll out ({said or 'unchanged'})"


class Watcher(job.Watcher, Protocol):
    """What the caller hears while a retrain runs: the CI job's steps (pull, run, check; and
    register, deploy), and each event as it is stored."""

    def recorded(self, kind: str, data: Mapping[str, Any]) -> None:
        """An event was stored (``retrain.step``, ``retrain.registered``...)."""


class Quiet:
    """A watcher that keeps nothing: what a retrain did is in its events and its result."""

    def step(self, name: str) -> None:
        pass

    def progress(self) -> Progress | None:
        return None

    def pulled(self, pulled: Pulled) -> None:
        pass

    def reporter(self, pipeline: Pipeline) -> Reporter:
        return self

    def line(self, stage: str, text: str, err: bool) -> None:
        pass

    def event(self, result: StageResult) -> None:
        pass

    def ran(self, launched: Launched | None, published: ConveyorError | None) -> None:
        pass

    def checked(self, checked: Checked, folder: Path) -> None:
        pass

    def failed(self, name: str, error: ConveyorError) -> None:
        pass

    def recorded(self, kind: str, data: Mapping[str, Any]) -> None:
        pass


def retrain(
    root: Path,
    env_name: str,
    *,
    reason: str,
    watcher: Watcher | None = None,
    now: Clock | None = None,
) -> Retrained:
    """Retrain the model of environment ``env_name`` and start its rollout (see the module).
    Never raises a :class:`ConveyorError`: a step that could not be done (an unknown
    environment, at step ``start``) ends it with outcome ``failed``. ``now`` is the clock of
    its events (default: ``time.time``)."""
    flow = _Flow(root, env_name, reason, watcher or Quiet(), now or time.time)
    try:
        return flow.go()
    except ConveyorError as exc:
        return flow.fail(exc)


@dataclass
class _Flow:
    root: Path
    env_name: str
    reason: str
    watcher: Watcher
    clock: Clock
    steps: list[Step] = field(default_factory=list)
    current: str = "start"
    env: Environment | None = None
    checked: Checked | None = None
    version: str | None = None  # registered by this retrain
    unchanged: int | None = None  # the latest version, when it is the package the run wrote
    rollout: Deployment | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()

    def go(self) -> Retrained:
        from conveyor.deploy.config import environment
        from conveyor.registry.stored import declared

        self.env = env = environment(self.root, self.env_name)
        self.record("retrain.started", {"reason": self.reason, "model": env.model})
        if env.model not in declared(self.root):
            raise ConfigError(
                f"environment {env.name} serves model {env.model}, which models: in "
                "conveyor.yaml does not declare: a retrain cannot tell which package is its",
                hint=f"declare it: models: {{{env.model}: {{path: FOLDER}}}}",
            )
        if job.has_remote(self.root):
            self.timed("pull", self.pull)
        else:
            self.done(Step("pull", "skipped: no default remote", 0.0))
        self.timed("run", self.run)
        self.timed("check", self.check)
        if self.checked is not None and self.checked.verdict != "pass":
            return self.end(
                "gates_failed", {"failed": _failed(self.checked), "run": self.checked.run}
            )
        self.timed("register", self.register)
        if self.version is None:
            return self.end("unchanged", {"model": env.model, "version": self.unchanged})
        self.timed("deploy", self.deploy)
        assert self.rollout is not None
        d = self.rollout
        said = {"version": d.candidate or d.stable, "stable": d.stable, "status": d.status}
        return self.end("rollout_started", {**said, "weight": d.weight})

    # Each step returns its result, as `rollout history` shows it.

    def pull(self) -> str:
        pulled = job.pull_data(self.root, self.watcher)
        return f"{pulled.result.transferred} object(s) fetched"

    def run(self) -> str:
        launched = job.run_pipeline(self.root, self.watcher)
        if launched is None:
            return "no stages"
        failed = [r for r in launched.results if r.status == "failed"]
        if failed:
            tail = failed[0].tail.strip().splitlines()
            raise PipelineError(
                f"stage {', '.join(r.name for r in failed)} failed"
                + (f": {tail[-1]}" if tail else ""),
                hint="`conveyor run` shows the whole output",
            )
        return ", ".join(f"{n} {status}" for status, n in launched.counts().items())

    def check(self) -> str:
        from conveyor.gates import config

        gates = config.load(self.root)
        if not gates.checks:
            return "skipped: no gates in conveyor.yaml"
        self.checked = checked = job.check_gates(self.root, gates, self.watcher)
        return "passed" if checked.verdict == "pass" else f"FAILED ({_failed(checked)})"

    def register(self) -> str:
        """The environment's model, when its package differs from its latest version's."""
        from conveyor.data import build
        from conveyor.data.workspace import writing
        from conveyor.foundation.paths import inside
        from conveyor.registry import stored
        from conveyor.registry.baseline import latest_run

        assert self.env is not None
        model = self.env.model
        run_id = latest_run(self.root)
        if run_id is None:
            return "skipped: no run recorded"
        # conveyor.yaml's path is the project's: a server's working directory may be elsewhere.
        path = str(self.root / stored.declared(self.root)[model])
        with writing("conveyor retrain", self.root) as ws:
            folder = inside(ws.root, path, what="model package")
            with ws.odb.batch() as batch:
                built = build.scan(ws.root, folder, ws.memo, store=batch, jobs=ws.jobs)
            latest = _latest(self.root, model)
            if latest is not None and latest.package == built.oid + ".tree":
                self.unchanged = latest.version
                return f"{model} unchanged: version {latest.version} is this package"
            version, _ = stored.register(ws, model, path, run=run_id)
        self.version = f"models:/{model}/{version}"
        self.record("retrain.registered", {"model": model, "version": version, "run": run_id})
        return f"registered {model} version {version} from run {run_id}"

    def deploy(self) -> str:
        from conveyor.deploy import flows

        assert self.env is not None and self.version is not None
        self.rollout = d = flows.deploy(self.root, self.env.name, self.version)
        return f"{d.status}, {d.weight:g} % candidate" if d.active else d.status

    def timed(self, name: str, body: Callable[[], str]) -> None:
        self.current = name
        self.watcher.step(name)
        start = time.monotonic()
        try:
            said = body()
        except ConveyorError as exc:
            self.done(Step(name, f"exit {exc.exit_code}", time.monotonic() - start), quietly=True)
            raise
        self.done(Step(name, said, time.monotonic() - start))

    def done(self, step: Step, *, quietly: bool = False) -> None:
        self.steps.append(step)
        data = {"step": step.name, "result": step.result, "seconds": round(step.seconds, 3)}
        self.record("retrain.step", data, quietly=quietly)

    def record(self, kind: str, data: Mapping[str, Any], *, quietly: bool = False) -> None:
        """Store an event of the environment, then tell the watcher; ``quietly``: a store that
        fails is logged, not raised (the retrain is failing already; its error comes first)."""
        from conveyor.registry.queries import subject
        from conveyor.tracking import events
        from conveyor.tracking.db import opened

        assert self.env is not None
        try:
            with opened(self.root) as store, store.engine.begin() as conn:
                events.append(conn, kind, subject(self.env.name), dict(data), at=self.clock())
        except ConveyorError as exc:
            if not quietly:
                raise
            log.warning("environment %s: %s not recorded: %s", self.env.name, kind, exc)
        self.watcher.recorded(kind, data)

    def end(self, outcome: Outcome, data: Mapping[str, Any]) -> Retrained:
        self.record(f"retrain.{outcome}", data)
        return self.result(outcome)

    def fail(self, exc: ConveyorError) -> Retrained:
        self.watcher.failed(self.current, exc)
        if self.env is not None:  # else there is no environment to record it on
            data = {"step": self.current, "error": exc.message, "hint": exc.hint}
            self.record("retrain.failed", data, quietly=True)
        return self.result("failed", exc)

    def result(self, outcome: Outcome, error: ConveyorError | None = None) -> Retrained:
        return Retrained(
            self.env_name, self.reason, outcome, self.steps, self.started, self.clock(),
            self.version, self.rollout, self.checked,
            self.current if error else None, error,
        )  # fmt: skip


def _failed(checked: Checked | None) -> str:
    """The gates that blocked, by name."""
    return ", ".join(r.name for r in checked.results if r.blocks) if checked else "-"


def _latest(root: Path, model: str) -> ModelVersion | None:
    """The model's latest version, None before its first."""
    from conveyor.registry.errors import ModelNotFound
    from conveyor.registry.stored import resolve

    try:
        return resolve(root, model)
    except ModelNotFound:
        return None


@dataclass(frozen=True)
class Decision:
    """Whether a retrain may start now; if not, why (and until when, for a cooldown)."""

    start: bool
    why: str = ""  # "one in flight", "cooldown"
    until: float | None = None

    def said(self) -> str:
        """``started``, ``refused: one in flight``, ``refused: cooldown until HH:MM:SS``."""
        if self.start:
            return "started"
        if self.until is None:
            return f"refused: {self.why}"
        return f"refused: {self.why} until {time.strftime('%H:%M:%S', time.localtime(self.until))}"


def decide(*, now: float, last_end: float | None, in_flight: bool, cooldown: float) -> Decision:
    """May a retrain start at ``now``? Not while one is in flight, nor within ``cooldown``
    seconds of the last one's end (None: there was none)."""
    if in_flight:
        return Decision(False, "one in flight")
    if last_end is not None and now < last_end + cooldown:
        return Decision(False, "cooldown", last_end + cooldown)
    return Decision(True)


@contextmanager
def exclusive(root: Path, env_name: str) -> Iterator[None]:
    """Hold the project's retrain lock for a retrain by hand; :class:`LockError` at once when
    a retrain is in flight (here or in a server of the project)."""
    lock = _lock(root, env_name)
    if lock is None:
        raise LockError(
            f"a retrain is in flight in this project ({_holder(root)})",
            hint=f"wait for it to end; `conveyor rollout history {env_name}` shows its steps",
        )
    try:
        yield
    finally:
        lock.release()


class Retrainer:
    """Retrains of environment ``env_name`` on request, one at a time, ``cooldown`` seconds
    apart at least (from one's end to the next one's start). ``on_done`` hears each
    :class:`Retrained` on the retrain's thread (a daemon: :meth:`wait` for it before exiting).
    ``clock`` is the time (and the events' time) the cooldown is measured with.

        >>> r = Retrainer(root, "production", cooldown=3600, on_done=notify)  # doctest: +SKIP
        >>> r.request("accuracy below 0.9 for 10 min")  # doctest: +SKIP
        'started'
    """

    def __init__(
        self,
        root: Path,
        env_name: str,
        *,
        cooldown: float,
        on_done: Callable[[Retrained], None] | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.root = root
        self.env_name = env_name
        self.cooldown = cooldown
        self.on_done = on_done
        self.clock = clock
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_end: float | None = None  # of this object's last retrain

    def request(self, reason: str) -> str:
        """Start a retrain for ``reason`` unless :func:`decide` refuses; what was decided."""
        with self._mutex:
            busy = self._thread is not None and self._thread.is_alive()
            lock = None if busy else _lock(self.root, self.env_name)
            # Read under the lock: a retrain elsewhere cannot end between the read and the start.
            last = self._last() if lock is not None else None
            decision = decide(
                now=self.clock(), last_end=last, in_flight=lock is None, cooldown=self.cooldown
            )
            if not decision.start:
                if lock is not None:
                    lock.release()
                return decision.said()
            assert lock is not None
            self._thread = threading.Thread(
                target=self._work, args=(reason, lock), name=f"retrain {self.env_name}",
                daemon=True,
            )  # fmt: skip
            self._thread.start()
            return decision.said()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the retrain in flight (if any) to end; whether none is in flight now."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _work(self, reason: str, lock: ProjectLock) -> None:
        try:
            done = retrain(self.root, self.env_name, reason=reason, now=self.clock)
            self._last_end = done.ended
        except Exception:  # a bug: the next request must still find no retrain in flight
            self._last_end = self.clock()
            log.exception("environment %s: the retrain failed unexpectedly", self.env_name)
            return
        finally:
            lock.release()
        if self.on_done is not None:
            try:
                self.on_done(done)
            except Exception:
                log.exception("environment %s: on_done failed", self.env_name)

    def _last(self) -> float | None:
        """The latest end of a retrain of the environment: this object's, or its events'."""
        ends = [self._last_end] if self._last_end is not None else []
        try:
            ends.extend(e.time for e in _endings(self.root, self.env_name))
        except ConveyorError as exc:
            log.warning("environment %s: past retrains not read: %s", self.env_name, exc)
        return max(ends, default=None)


def _endings(root: Path, env_name: str) -> list[Event]:
    """The latest event of each ending kind of the environment's retrains."""
    from conveyor.registry.stored import last_deployment_event

    found = (last_deployment_event(root, env_name, kind) for kind in ENDINGS)
    return [e for e in found if e is not None]


def _lock(root: Path, env_name: str) -> ProjectLock | None:
    """The project's retrain lock, held; None if another holds it (no waiting)."""
    lock = ProjectLock(
        root / CONTROL_DIR / LOCK, timeout=0.0, command=f"conveyor retrain {env_name}"
    )
    try:
        lock.acquire()
    except LockError:
        return None
    return lock


def _holder(root: Path) -> str:
    try:
        return (root / CONTROL_DIR / LOCK).read_text().strip() or "unknown pid"
    except OSError:
        return "unknown pid"
