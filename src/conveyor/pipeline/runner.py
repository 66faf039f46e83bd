"""``conveyor run``: run what is stale, upstream first, independent stages at once.

The main thread owns every decision and every write to the cache, the state memo and
``conveyor.lock``; only stage commands run elsewhere (in the executor). A stage is decided just
before it could start, from hashes taken after its upstream stages finished, so an upstream
stage that wrote the same outs as before leaves its dependents up to date.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import ConveyorError, PipelineError
from conveyor.pipeline import executors, runcache, stale
from conveyor.pipeline import lock as lock_mod
from conveyor.pipeline.definition import FILE, Pipeline
from conveyor.pipeline.executor import Executor, Job, Outcome, Sink
from conveyor.pipeline.outs import Observer, adopt, check_places, clear, commit, remove, restore
from conveyor.pipeline.planner import Options, observe, select, targets
from conveyor.pipeline.record import Recorder
from conveyor.pipeline.stage import Meta, Stage
from conveyor.tracking.api import new_run_id

# What happened to a stage in a run.
RAN, RESTORED, CHECKED_OUT, UP_TO_DATE = "ran", "restored", "checked out", "up to date"
FAILED, SKIPPED, NOT_RUN, PLANNED = "failed", "skipped", "not run", "planned"


class StageResult(NamedTuple):
    name: str
    status: str
    reasons: tuple[str, ...] = ()
    duration: float = 0.0
    tail: str = ""  # for a failure: the end of its stderr, or what went wrong
    code: int | None = None  # the command's exit code, when it ran


class Reporter(Sink, Protocol):
    """The CLI's view of a run: stage output lines (from any thread) and stage events."""

    def event(self, result: StageResult) -> None: ...


class Run:
    """One ``conveyor run``: call :meth:`execute` once, inside the project lock."""

    def __init__(
        self,
        ws: Workspace,
        pipeline: Pipeline,
        opts: Options,
        reporter: Reporter,
        executor: Executor | None = None,
        *,
        name: str = "",
    ) -> None:
        self.ws = ws
        self.pipeline = pipeline
        self.opts = opts
        self.reporter = reporter
        self.jobs = opts.jobs or os.cpu_count() or 1
        if executor is None:
            spec = executors.resolve(ws.root, opts.executor)
            executor = executors.open_executor(ws, spec, opts.jobs, reporter)
        self.executor = executor
        self.run_id = new_run_id()
        self.name = name
        self.entries = lock_mod.load(ws.root)
        self.observer = Observer(ws)
        self.cache = runcache.FolderRunCache(ws.paths.cache / "runs")
        self.results: dict[str, StageResult] = {}
        self.started: dict[str, tuple[stale.Decision, stale.Observed, float]] = {}
        # With restore_upstream, only these may run; the rest must be restored.
        self.runnable = targets(pipeline, opts) if opts.restore_upstream else None

    def execute(self) -> list[StageResult]:
        """Run the selected stages; the run is recorded in the metadata store's spool."""
        names = select(self.pipeline, self.opts)  # a mistyped stage is an error, not a failure
        # So is an out that must not be deleted: refused before any stage starts.
        check_places(self.ws.root, (self.pipeline.stages[n] for n in names), FILE)
        recorder = Recorder(self.ws.root, self.run_id, self.name)
        status = "failed"
        try:
            results = self._execute()
            status = "failed" if any(r.status == FAILED for r in results) else "finished"
            return results
        except KeyboardInterrupt:
            status = "killed"
            raise
        finally:
            recorder.finish(self.pipeline, self.entries, list(self.results.values()), status)

    def _execute(self) -> list[StageResult]:
        names = select(self.pipeline, self.opts)
        pending = list(names)
        stopping = False
        with _terminate_as_interrupt():
            try:
                while True:
                    moved = True
                    while moved and pending:
                        moved = False
                        for name in list(pending):
                            if self._blocked(name):
                                pending.remove(name)
                                self._report(StageResult(name, SKIPPED, ("an upstream failed",)))
                                moved = True
                            elif not stopping and self._ready(name, names):
                                pending.remove(name)
                                self._start(name)
                                moved = True
                    if not self.executor.busy:
                        break
                    for outcome in self.executor.wait():
                        if not self._finish(outcome) and not self.opts.keep_going:
                            stopping = True
            finally:
                self.executor.stop()
        for name in pending:
            self._report(StageResult(name, NOT_RUN, ("the run stopped after a failure",)))
        return [self.results[n] for n in names]

    def _ready(self, name: str, names: list[str]) -> bool:
        selected = set(names)
        ups = self.pipeline.upstream.get(name, ())
        return all(u not in selected or u in self.results for u in ups)

    def _blocked(self, name: str) -> bool:
        ups = self.pipeline.upstream.get(name, ())
        return any(self.results.get(u, StageResult(u, "")).status in (FAILED, SKIPPED) for u in ups)

    def _report(self, result: StageResult) -> None:
        self.results[result.name] = result
        self.reporter.event(result)

    def _start(self, name: str) -> None:
        stage = self.pipeline.stages[name]
        try:
            now = observe(stage, self.pipeline, self.observer)
            entry = self.entries.get(name)
            in_cache = self.observer.in_cache
            upstream_only = self.runnable is not None and name not in self.runnable
            force = self.opts.force and not upstream_only
            decision = stale.decide(stage, entry, now, in_cache, force=force)
            if decision.action == stale.SKIP:
                self._report(StageResult(name, UP_TO_DATE, decision.reasons))
                return
            if decision.action == stale.CHECKOUT:
                assert entry is not None
                lost = {
                    o: entry.outs[o] for o, m in now.outs.items() if m is None and o in entry.outs
                }
                restore(self.ws, lost)
                self._forget_outs(stage)
                self._report(StageResult(name, CHECKED_OUT, decision.reasons))
                return
            missing = [d for d, m in now.deps.items() if m is None]
            if missing:
                raise PipelineError(
                    f"dep {', '.join(missing)} does not exist and no stage writes it",
                    hint="create it, track it with `conveyor add`, or fix the stage's deps",
                )
            reuse = self.opts.run_cache and not force and _cacheable(stage)
            if (reuse or upstream_only) and self._restore(stage, now):
                self._report(StageResult(name, RESTORED, decision.reasons))
                return
            if upstream_only:
                raise PipelineError(
                    f"stage {name!r} is needed but not run here (--restore-upstream), and the "
                    "run-cache cannot restore it: "
                    + "; ".join(decision.reasons or ("its outs are not in the cache",)),
                    hint="run it first and share it (`conveyor push --run-cache`), then "
                    "`conveyor pull --run-cache` here",
                )
            clear(self.ws.root, stage.outs)
            self._forget_outs(stage)
            self.started[name] = (decision, now, time.monotonic())
            self.reporter.event(StageResult(name, "running", decision.reasons))
            self.executor.submit(self._job(stage, now))
        except ConveyorError as exc:
            tail = exc.message + (f"\n  hint: {exc.hint}" if exc.hint else "")
            self._report(StageResult(name, FAILED, (), tail=tail))

    def _restore(self, stage: Stage, now: stale.Observed) -> bool:
        if not stage.outs:
            return False
        outs = self.cache.get(runcache.key(stage, now.deps, now.values))
        if outs is None or set(outs) != {o.path for o in stage.outs}:
            return False
        if not all(self.observer.in_cache(m) for m in outs.values()):
            return False
        for out in stage.outs:
            if not out.persist:
                remove(self.ws.root / out.path)
        restore(self.ws, outs)
        self._forget_outs(stage)
        self._write_lock(stage, now, outs)
        return True

    def _job(self, stage: Stage, now: stale.Observed) -> Job:
        env = {
            **os.environ,
            **dict(stage.env),
            "CONVEYOR_STAGE": stage.name,
            "CONVEYOR_ROOT": str(self.ws.root),
            "CONVEYOR_RUN_ID": self.run_id,
        }
        log = self.ws.paths.control / "logs" / self.run_id / f"{stage.name}.log"
        inputs = {d: m for d, m in now.deps.items() if m is not None}
        for out in stage.outs:
            meta = now.outs.get(out.path)
            if out.persist and meta is not None:  # what it accumulated so far goes along
                inputs[out.path] = meta
        return Job(
            stage.name,
            stage.cmd,
            self.ws.root / stage.wdir,
            env,
            log,
            stage,
            tuple(sorted(inputs.items())),
        )

    def _finish(self, outcome: Outcome) -> bool:
        name = outcome.stage
        stage = self.pipeline.stages[name]
        decision, now, _ = self.started.pop(name)
        if outcome.code != 0:
            code = outcome.code
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            self._report(StageResult(name, FAILED, (how,), outcome.duration, outcome.tail, code))
            return False
        try:
            if outcome.outs is None:
                outs = commit(self.ws, stage.outs)
            else:  # it ran elsewhere: its outs are in the cache already
                outs = adopt(self.ws, stage.outs, outcome.outs)
        except ConveyorError as exc:
            self._report(StageResult(name, FAILED, (), outcome.duration, exc.message))
            return False
        finally:
            self._forget_outs(stage)
        self._write_lock(stage, now, outs)
        if _cacheable(stage) and outs:
            ident = runcache.identity(stage, now.deps, now.values)
            self.cache.put(runcache.key_of(ident), outs, ident)
        self._report(StageResult(name, RAN, decision.reasons, outcome.duration, code=0))
        return True

    def _write_lock(self, stage: Stage, now: stale.Observed, outs: dict[str, Meta]) -> None:
        params: dict[str, dict[str, Any]] = {}
        for (file, key), value in now.values.items():
            params.setdefault(file, {})[key] = value
        deps = {d: m for d, m in now.deps.items() if m is not None}
        self.entries[stage.name] = lock_mod.Entry(stage.cmd, deps, params, outs)
        lock_mod.save(self.ws.root, self.entries)

    def _forget_outs(self, stage: Stage) -> None:
        for out in stage.outs:
            self.observer.forget(out.path)


def _cacheable(stage: Stage) -> bool:
    """Whether the run-cache may restore the stage: not one that always runs, and not one with
    a persistent out (it accumulates: an older copy would overwrite what it gathered since)."""
    return not stage.always_changed and not any(o.persist for o in stage.outs)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run the way Ctrl-C does: children stopped, no half-written lock."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
