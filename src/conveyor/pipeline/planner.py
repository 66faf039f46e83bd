"""Planning a run: which stages are selected, what is there now, and what each would do.

Kept apart from the runner so that ``status`` and ``run --dry`` load neither the executor nor
the checkout machinery.
"""

from __future__ import annotations

from typing import NamedTuple

from conveyor.data.workspace import Workspace
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean
from conveyor.pipeline import dag, stale
from conveyor.pipeline import lock as lock_mod
from conveyor.pipeline.definition import Pipeline
from conveyor.pipeline.outs import Observer
from conveyor.pipeline.stage import Stage


class Options(NamedTuple):
    targets: tuple[str, ...] = ()
    force: bool = False
    downstream: bool = False
    single: bool = False
    keep_going: bool = False
    run_cache: bool = True
    jobs: int = 0  # 0: one per core
    # The stages the targets need are restored (up to date, checked out, or from the run-cache),
    # never run: a task of an orchestrator runs its one stage, what it needs came from others.
    restore_upstream: bool = False
    executor: str = ""  # --executor: local, ray, ray://HOST:PORT ("": conveyor.yaml's executor:)


def select(pipeline: Pipeline, opts: Options) -> list[str]:
    """The stages a run considers, in order: targets and what they need (or what needs them)."""
    if not opts.targets:
        return list(pipeline.order)
    chosen: list[str] = []
    for target in opts.targets:
        names = [n for n in pipeline.stages if n == target or n.split("@")[0] == target]
        if not names:
            raise ConfigError(
                f"no stage named {target!r}",
                hint=did_you_mean(target, pipeline.stages) or "list them with `conveyor dag`",
            )
        chosen.extend(names)
    if opts.single and not opts.restore_upstream:
        wanted = set(chosen)
    elif opts.downstream:
        wanted = dag.closure(chosen, dag.dependents(pipeline.upstream))
    else:
        wanted = dag.closure(chosen, pipeline.upstream)
    return [n for n in pipeline.order if n in wanted]


def targets(pipeline: Pipeline, opts: Options) -> set[str]:
    """The stages named on the command line (every expansion of a name), or every stage."""
    return set(select(pipeline, opts._replace(single=True, restore_upstream=False)))


def observe(stage: Stage, pipeline: Pipeline, observer: Observer) -> stale.Observed:
    return stale.Observed(
        {d: observer.meta(d) for d in stage.deps},
        {o.path: observer.meta(o.path) for o in stage.outs},
        {ref: pipeline.values.get(ref) for ref in stage.params},
    )


def plan(ws: Workspace, pipeline: Pipeline, opts: Options) -> dict[str, stale.Decision]:
    """What a run would do and why, without running anything (``--dry`` and ``status``)."""
    entries = lock_mod.load(ws.root)
    observer = Observer(ws)
    decisions = {}
    for name in select(pipeline, opts):
        stage = pipeline.stages[name]
        now = observe(stage, pipeline, observer)
        decisions[name] = stale.decide(
            stage, entries.get(name), now, observer.in_cache, force=opts.force
        )
    return stale.propagate(pipeline.order, pipeline.upstream, decisions)


def stale_stages(ws: Workspace) -> dict[str, stale.Decision]:
    """Every stage that is not up to date, with its reasons (what ``conveyor status`` shows)."""
    from conveyor.pipeline import definition

    pipeline = definition.load(ws.root)
    if not pipeline.stages:
        return {}
    decisions = plan(ws, pipeline, Options())
    return {n: d for n, d in decisions.items() if d.action != "skip" or d.reasons}
