"""The CI job, in any CI system: pull the data, run the pipeline (cached), check the gates,
write the pull-request report, and on the default branch with passing gates (``release``)
register the changed models and point an alias at them.

Nothing is printed here: a :class:`Watcher` hears of each step as it happens (the CLI prints
it; a UI could stream it), and :func:`run_job` returns every step's outcome. The steps are
functions of their own (:func:`pull_data`, :func:`run_pipeline`, :func:`check_gates`) that
:mod:`conveyor.ci.retrain` chains in another order.

    >>> done = run_job(root, JobOptions(release=True), watcher)  # doctest: +SKIP
    >>> done.code, [s.name for s in done.steps]  # doctest: +SKIP
    (0, ['pull', 'run', 'check', 'report', 'release'])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from conveyor.foundation.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.ci.check import Checked
    from conveyor.ci.env import CiEnv
    from conveyor.ci.pull import Pulled
    from conveyor.foundation.progress import Progress
    from conveyor.gates.config import Gates
    from conveyor.pipeline.definition import Pipeline
    from conveyor.pipeline.launch import Launched
    from conveyor.pipeline.runner import Reporter

REPORTS = "reports"


@dataclass(frozen=True)
class JobOptions:
    release: bool = False  # on the default branch, with passing gates: register, move the alias
    pull: bool = True
    every_model: bool = False  # pull every registered version, not only the aliased ones
    run_cache: bool = True  # pull the run-cache's entries (and their outs) too
    base: str | None = None  # what the report compares with (default: see ci.sides)
    alias: str = "staging"  # the alias a release moves


@dataclass(frozen=True)
class Step:
    name: str  # pull, run, check, report, release
    result: str  # "ok", "passed", "FAILED", "exit 2", "skipped: why", what a release did
    seconds: float


@dataclass(frozen=True)
class JobResult:
    steps: list[Step]
    code: int  # 0: the gates passed; 1: a blocking gate failed; else the failed step's code
    checked: Checked | None = None
    report: Path | None = None


class Watcher(Protocol):
    """What the caller hears while the job runs."""

    def step(self, name: str) -> None:
        """A step (pull, run, check) starts."""

    def progress(self) -> Progress | None:
        """Where a transfer's progress goes."""

    def pulled(self, pulled: Pulled) -> None:
        """The pull is done (its errors, if any, fail the step next)."""

    def reporter(self, pipeline: Pipeline) -> Reporter:
        """Where the run's stage output and events go."""

    def ran(self, launched: Launched | None, published: ConveyorError | None) -> None:
        """The run is done (None: the pipeline has no stages); ``published``: the shared
        store did not answer, the run waits in the spool."""

    def checked(self, checked: Checked, folder: Path) -> None:
        """The gates were evaluated; their reports are in ``folder``."""

    def failed(self, name: str, error: ConveyorError) -> None:
        """A step could not be done: the job stops after it."""


def run_job(root: Path, options: JobOptions, watcher: Watcher) -> JobResult:
    """Run the whole job (see the module); the steps and the exit code the job ends with."""
    from conveyor.ci.env import current
    from conveyor.gates import config

    steps: list[Step] = []
    if not options.pull:
        steps.append(Step("pull", "skipped", 0.0))
    elif not has_remote(root):
        steps.append(Step("pull", "skipped: no default remote", 0.0))
    elif (code := _timed(steps, "pull", watcher, lambda: _pull(root, options, watcher))) != 0:
        return JobResult(steps, code)
    if (code := _timed(steps, "run", watcher, lambda: _run(root, watcher))) != 0:
        return JobResult(steps, code)
    gates = config.load(root)
    checked = None
    if gates.checks:
        watcher.step("check")
        start = time.monotonic()
        checked = check_gates(root, gates, watcher)
        said = "passed" if checked.verdict == "pass" else "FAILED"
        steps.append(Step("check", said, time.monotonic() - start))
    else:
        steps.append(Step("check", "skipped: no gates in conveyor.yaml", 0.0))
    verdict = checked.verdict if checked is not None else "pass"
    start = time.monotonic()
    from conveyor.ci import pull_request

    written = pull_request.write(
        root, gates, base=options.base, folder=root / REPORTS, checked=checked
    )
    steps.append(Step("report", str(written.path.relative_to(root)), time.monotonic() - start))
    if options.release:
        steps.append(Step("release", _release_step(root, current(), verdict, options.alias), 0.0))
    return JobResult(steps, 0 if verdict == "pass" else 1, checked, written.path)


def _timed(steps: list[Step], name: str, watcher: Watcher, body: Callable[[], int]) -> int:
    """Run one step; its exit code (a ConveyorError's own, told to the watcher)."""
    watcher.step(name)
    start = time.monotonic()
    try:
        code = body()
    except ConveyorError as exc:
        watcher.failed(name, exc)
        code = exc.exit_code
    steps.append(Step(name, "ok" if code == 0 else f"exit {code}", time.monotonic() - start))
    return code


def _pull(root: Path, options: JobOptions, watcher: Watcher) -> int:
    pull_data(root, watcher, every_model=options.every_model, run_cache=options.run_cache)
    return 0


def _run(root: Path, watcher: Watcher) -> int:
    launched = run_pipeline(root, watcher)
    return 1 if launched is not None and launched.failed else 0


def has_remote(root: Path) -> bool:
    """Whether the project has a default remote to pull from."""
    from conveyor.data.workspace import Workspace

    with Workspace(root) as ws:
        return bool(ws.config.get("core.remote"))


def pull_data(
    root: Path, watcher: Watcher, *, every_model: bool = False, run_cache: bool = False
) -> Pulled:
    """The pull step: the data, the pipeline's outs and the registered packages from the
    default remote (with ``run_cache``, the run-cache's entries and their outs: a combination
    a teammate ran is then restored, not run again); what could not be fetched is raised,
    after the watcher heard of it."""
    from conveyor.ci.pull import pull
    from conveyor.data.workspace import writing

    with writing("conveyor pull", root) as ws:
        pulled = pull(ws, every_model=every_model, run_cache=run_cache, progress=watcher.progress())
    watcher.pulled(pulled)
    error = pulled.error()
    if error is not None:
        raise error
    return pulled


def run_pipeline(root: Path, watcher: Watcher) -> Launched | None:
    """The run step: the whole pipeline, cached (None: it has no stages). A stage that fails is
    in the result (its ``failed``), not raised: the watcher's reporter has shown it."""
    from conveyor.ci import sections
    from conveyor.data.workspace import writing
    from conveyor.pipeline import launch
    from conveyor.pipeline.planner import Options

    sections.check(root)  # a mistake anywhere in conveyor.yaml (a gate too) fails before a run
    with writing("conveyor run", root) as ws:
        pipeline = launch.load(ws)
        if not pipeline.stages:
            watcher.ran(None, None)
            return None
        launched = launch.run(ws, pipeline, Options(), watcher.reporter(pipeline))
        watcher.ran(launched, launch.publish(ws.root))
    return launched


def check_gates(root: Path, gates: Gates, watcher: Watcher) -> Checked:
    """The check step: evaluate ``gates`` on the workspace, write their reports into
    ``root``/reports and tag the latest run with the verdict."""
    from conveyor.ci.check import check

    folder = root / REPORTS
    checked = check(root, gates, run=None, reports=folder)
    watcher.checked(checked, folder)
    return checked


def _release_step(root: Path, env: CiEnv, verdict: str, alias: str) -> str:
    from conveyor.ci.env import is_main

    if env.provider == "none":  # a local run: the branch git has checked out
        from conveyor.tracking.api import git_state

        env = replace(env, branch=git_state(root).get("git_branch") or None)
    if not is_main(env):
        return "skipped: not the default branch"
    if verdict != "pass":
        return "skipped: the gates failed"
    return release(root, alias)


def release(root: Path, alias: str) -> str:
    """Register every declared model whose package changed since its latest version (with the
    latest run as its lineage); point ``alias`` at each declared model's latest version. What
    was done, in one line."""

    from conveyor.data.workspace import writing
    from conveyor.registry import stored
    from conveyor.registry.baseline import latest_run
    from conveyor.registry.versions import Registry, parse_uri
    from conveyor.tracking.api import user_name
    from conveyor.tracking.db import opened

    run_id = latest_run(root)
    if run_id is None:
        return "skipped: no run recorded"
    with writing("conveyor ci --release", root) as ws:
        lines = stored.register_declared(ws, run_id)
    moved = []
    with opened(root) as store:
        registry = Registry(store)
        for name in stored.declared(root):
            latest = registry.resolve(parse_uri(name))
            registry.set_alias(name, alias, latest.version, user=user_name())
            moved.append(f"{name}@{alias} -> version {latest.version}")
    return "; ".join([*lines, *moved]) or "no declared models"
