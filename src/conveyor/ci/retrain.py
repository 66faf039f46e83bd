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

A monitor does not call :func:`retrain` itself: :class:`conveyor.ci.retrainer.Retrainer` does,
one at a time per project and with a cooldown.

    >>> done = retrain(root, "production", reason="drift on mean_texture")  # doctest: +SKIP
    >>> done.outcome, done.version  # doctest: +SKIP
    ('rollout_started', 'models:/classifier/4')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from conveyor.ci import job
from conveyor.ci.job import Step
from conveyor.foundation.errors import ConfigError, ConveyorError, PipelineError

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

log = logging.getLogger(__name__)

Outcome = Literal["rollout_started", "unchanged", "gates_failed", "failed"]
Clock = Callable[[], float]

# The events a retrain ends with; the latest one's time starts the cooldown.
ENDINGS = tuple(f"retrain.{o}" for o in ("rollout_started", "unchanged", "gates_failed", "failed"))


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
    started: float = field(init=False)

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
