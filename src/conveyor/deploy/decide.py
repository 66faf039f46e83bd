"""The rollout decision: (deployment record, this tick's analysis, the clock) -> the next record
and the events that say why.

    record, events = start(env, current, version=4, now=clock())
    record, events = decide(env, record, results, now=clock())     # every analysis interval
    record, events = promote(record, now, full=True)               # and the manual commands

Pure: no store, no server, no clock of its own, so a rollout is tested by walking a record
through its steps with a fake clock. The caller saves the record (with a revision check) and
its events in one transaction, and the server follows the record.

How each strategy moves (the semantics of Argo Rollouts and Flagger, where they agree):

- **first deploy**: no stable version yet: the version is stable at once, 100 % of traffic,
  no steps and no analysis (Argo does the same for a Rollout's first revision).
- **canary**: the steps in order. ``{weight: W}`` sends W % to the candidate and completes
  when an analysis passes at that weight (Flagger's one passing check per step); a weight of
  100 completes at once (no stable traffic is left to compare with). ``{pause: 30s}``
  completes when its time is up and the last conclusive analysis did not fail; ``{pause: }``
  (no duration) waits, status ``paused``, for ``rollout resume`` or ``promote``. After the
  last step: promoted.
- **ab**: the split and sticky key stay for the whole test; when both sides have the planned
  number of labels (``min_samples``), one test decides (no peeking at every tick): promoted
  when the candidate is significantly better, aborted otherwise; event ``rollout.verdict``.
- **shadow**: the candidate gets copies (``weight`` holds the percent copied); after
  ``duration``, the first passing analysis (agreement included) promotes it.
- **blue_green**: the candidate gets copies, no answers; the first passing analysis switches
  all traffic at once.

Analysis, every tick that has results: a ``fail`` adds one to ``failures`` (a pass resets it,
an inconclusive leaves it); ``failures >= failure_limit`` aborts: weight 0 at once, status
``aborted``, the candidate kept for inspection, the alias unchanged. Inconclusive is never a
pass: a step that cannot complete waits, and ``deadline`` seconds after it could have
completed, ``on_deadline`` decides: abort (the default) or promote (never when the last
conclusive analysis failed). A paused rollout still aborts on failures; it does not advance
and its deadline does not run (resume restarts the step's clock). A strategy changed in
conveyor.yaml under a running rollout (another kind, fewer steps than the one it is at) aborts
it rather than guess.

Every change bumps the record's revision, and comes with events (``rollout.*``) that carry
their inputs: the checks' values, thresholds and sample sizes, the step and weight, the reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from conveyor.deploy.analysis import CheckResult, Verdict, overall
from conveyor.deploy.config import Environment, Step
from conveyor.deploy.errors import DeployError
from conveyor.registry.deployment import Deployment


@dataclass(frozen=True)
class Event:
    """One thing that happened to a rollout: ``kind`` (``rollout.promoted``) and its data.
    Unpacks as ``(kind, data)``, the pair the store appends."""

    kind: str
    data: dict[str, Any]

    def __iter__(self) -> Iterator[Any]:
        yield self.kind
        yield self.data


Decision = tuple[Deployment, list[Event]]


# ------------------------------------------------------------------------------------- start


def start(env: Environment, current: Deployment | None, version: int, now: float) -> Decision:
    """Start deploying ``version`` of ``env.model`` to ``env``.

    The first deploy (no stable version, or the environment now names another model) makes it
    stable at once; otherwise it becomes the candidate and the strategy's first step applies.
    :class:`DeployError` when it is already stable or a rollout is on."""
    if current is not None and current.active:
        raise DeployError(
            f"{env.name}: a rollout of {current.model} version {current.candidate} is "
            f"{current.status} (step {current.step + 1}, {current.weight:g} %)",
            hint=f"finish it first: `conveyor rollout promote {env.name}` or "
            f"`conveyor rollout abort {env.name}`",
        )
    kind = env.strategy.kind
    if current is None or current.stable is None or current.model != env.model:
        revision = current.revision if current is not None else 0
        was = current.model if current is not None and current.stable is not None else None
        why = "first deploy" if was is None else f"first deploy of {env.model} (was {was})"
        first = Deployment(
            env.name, env.model, version, None, kind, "promoted", started=now, step_started=now,
            message=f"{why}: version {version} serves 100 %", revision=revision,
        )  # fmt: skip
        events = [
            Event("rollout.started", {"version": version, "stable": None, "mode": kind,
                                      "first": True}),
            Event("rollout.promoted", {"version": version, "previous": None, "reason": why}),
        ]  # fmt: skip
        return replace(first, revision=revision + 1), events
    if version == current.stable:
        raise DeployError(
            f"{env.name}: {env.model} version {version} is already stable there",
            hint="deploy another version, or `conveyor rollback` to the previous one",
        )
    strategy = env.strategy
    d = replace(
        current, candidate=version, mode=kind, status="progressing", step=0, weight=0.0,
        sticky="", started=now, step_started=now, failures=0,
        message=f"rolling out version {version} ({kind}) over version {current.stable}",
    )  # fmt: skip
    events = [
        Event(
            "rollout.started",
            {"version": version, "stable": current.stable, "mode": kind,
             "strategy": _strategy(env), "analysis": asdict(env.analysis)},
        )
    ]  # fmt: skip
    if kind == "canary":
        d, entered = _enter(env, d, 0, now)
        events += entered
    else:
        weight = {"ab": strategy.split, "shadow": strategy.fraction * 100}.get(kind, 0.0)
        sticky = strategy.sticky if kind == "ab" else ""
        d = replace(d, weight=weight, sticky=sticky)
        events.append(Event("rollout.step", {"step": 0, "weight": weight, "mode": kind,
                                             "sticky": sticky}))  # fmt: skip
    return _commit(current, d, events)


# ------------------------------------------------------------------------------------ decide


def decide(
    env: Environment, d: Deployment, results: Sequence[CheckResult] | None, now: float
) -> Decision:
    """One controller tick. ``results`` are this tick's analysis (None: none this tick, only
    the clock moves); a record with no rollout on comes back unchanged, with no events."""
    if not d.active:
        return d, []
    events: list[Event] = []
    new = d
    verdict: Verdict | None = None
    if results is not None:
        guards = [r for r in results if r.metric != "ab"]
        verdict = overall(guards)
        failures = d.failures + 1 if verdict == "fail" else 0 if verdict == "pass" else d.failures
        new = replace(new, failures=failures)
        limit = env.analysis.failure_limit
        events.append(
            Event(
                "rollout.analysis",
                {"checks": [r.to_dict() for r in results], "verdict": verdict, "step": d.step,
                 "weight": d.weight, "failures": failures, "failure_limit": limit},
            )
        )  # fmt: skip
        if verdict == "fail" and failures >= limit:
            failing = [r for r in guards if r.verdict == "fail"]
            said = "; ".join(f"{r.metric}: {r.detail}" for r in failing)
            reason = f"analysis failed {failures} time(s) (failure_limit {limit}): {said}"
            new, aborted = _abort(new, now, reason, checks=[r.to_dict() for r in failing])
            return _commit(d, new, events + aborted)
    if new.status == "paused":
        return _commit(d, new, events)
    if env.strategy.kind != new.mode:  # conveyor.yaml changed under a running rollout
        reason = f"the strategy is {env.strategy.kind} now; this rollout began as {new.mode}"
        new, aborted = _abort(new, now, reason)
        return _commit(d, new, events + aborted)
    if new.mode == "canary":
        new, moved = _canary(env, new, verdict, now)
    elif new.mode == "ab":
        new, moved = _ab(env, new, results, now)
    else:
        new, moved = _switch(env, new, verdict, results, now)
    return _commit(d, new, events + moved)


def _canary(env: Environment, d: Deployment, verdict: Verdict | None, now: float) -> Decision:
    steps = _steps(env)
    if d.step >= len(steps):  # conveyor.yaml lost steps under a running rollout
        return _abort(d, now, f"the canary has {len(steps)} steps now; this rollout was at "
                              f"step {d.step + 1}")  # fmt: skip
    step = steps[d.step]
    if step.weight is not None:
        ready, done = d.step_started, verdict == "pass"
    elif step.pause is None:  # resumed from a pause without duration
        ready, done = d.step_started, True
    else:
        ready = d.step_started + step.pause
        done = now >= ready and d.failures == 0
    if done:
        return _enter(env, d, d.step + 1, now)
    if now >= ready + env.analysis.deadline:
        return _deadline(env, d, now)
    return d, []


def _enter(env: Environment, d: Deployment, index: int, now: float, **extra: Any) -> Decision:
    """Apply step ``index`` of the canary (and the ones after it that complete at once)."""
    steps = _steps(env)
    events: list[Event] = []
    while index < len(steps):
        step = steps[index]
        d = replace(d, step=index, step_started=now, status="progressing")
        data = {"step": index, "steps": len(steps), "weight": d.weight, **extra}
        if step.weight is not None:
            d = replace(d, weight=step.weight, message=f"step {index + 1}: {step.weight:g} %")
            events.append(Event("rollout.step", {**data, "weight": step.weight}))
            if step.weight >= 100:  # no stable traffic left to compare with: done
                index += 1
                continue
            return d, events
        events.append(Event("rollout.step", {**data, "pause": step.pause}))
        if step.pause is None:
            message = f"step {index + 1}: paused until `conveyor rollout resume {d.env}`"
            d = replace(d, status="paused", message=message)
            events.append(Event("rollout.paused", {"step": index, "reason": "step"}))
        else:
            d = replace(d, message=f"step {index + 1}: pause {step.pause:g} s")
        return d, events
    promoted, more = _promote(d, now, "every step passed", **extra)
    return promoted, events + more


def _ab(
    env: Environment, d: Deployment, results: Sequence[CheckResult] | None, now: float
) -> Decision:
    ab = next((r for r in results or () if r.metric == "ab"), None)
    metric = env.strategy.metric
    if ab is not None and ab.verdict != "inconclusive" and (ab.verdict == "fail" or
                                                            d.failures == 0):  # fmt: skip
        decision = "promote" if ab.verdict == "pass" else "abort"
        verdict = Event(
            "rollout.verdict",
            {**(ab.comparison or {}), "metric": metric, "decision": decision,
             "detail": ab.detail},
        )  # fmt: skip
        if decision == "promote":
            d, events = _promote(d, now, f"A/B: {ab.detail}", verdict=ab.comparison)
        else:
            d, events = _abort(d, now, f"A/B: {ab.detail}", verdict=ab.comparison)
        return d, [verdict, *events]
    if now >= d.step_started + env.analysis.deadline:
        comparison = ab.comparison if ab is not None else None
        d, events = _deadline(env, d, now, verdict=comparison)
        decision = "promote" if d.status == "promoted" else "abort"
        why = ab.detail if ab is not None else "no A/B result"
        verdict = Event(
            "rollout.verdict",
            {**(comparison or {}), "metric": metric, "decision": decision,
             "detail": f"deadline reached: {why}"},
        )  # fmt: skip
        return d, [verdict, *events]
    return d, []


def _switch(
    env: Environment,
    d: Deployment,
    verdict: Verdict | None,
    results: Sequence[CheckResult] | None,
    now: float,
) -> Decision:
    """Shadow and blue-green: one passing analysis (after the shadow's duration) promotes."""
    ready = d.step_started + (env.strategy.duration if d.mode == "shadow" else 0.0)
    if now >= ready and verdict == "pass":
        checks = [r.to_dict() for r in results or ()]
        what = "shadow" if d.mode == "shadow" else "blue-green"
        return _promote(d, now, f"{what}: analysis passed, all traffic switched", checks=checks)
    if now >= ready + env.analysis.deadline:
        return _deadline(env, d, now)
    return d, []


def _deadline(env: Environment, d: Deployment, now: float, **data: Any) -> Decision:
    waited = env.analysis.deadline
    if d.failures > 0:
        reason = f"deadline: no passing analysis {waited:g} s after the step could complete"
        return _abort(d, now, f"{reason}; the last one failed", deadline=True, **data)
    reason = f"deadline: analysis still inconclusive {waited:g} s after the step could complete"
    if env.analysis.on_deadline == "promote":
        return _promote(d, now, f"{reason} (on_deadline: promote)", deadline=True, **data)
    return _abort(d, now, f"{reason} (on_deadline: abort)", deadline=True, **data)


# ----------------------------------------------------------------------------------- manual


def promote(
    d: Deployment, now: float, full: bool = False, *, env: Environment | None = None
) -> Decision:
    """``conveyor rollout promote [--full]``: a canary moves to its next step (skipping a
    pause, or a weight step's analysis); ``full``, or any other strategy, promotes the
    candidate at once. A canary's next step needs ``env`` (its steps)."""
    _need_rollout(d, "promote")
    if full or d.mode != "canary":
        said = "promoted by hand" + (" (--full: the remaining steps skipped)" if full else "")
        return _commit(d, *_promote(d, now, said, manual=True, full=full, step=d.step))
    if env is None:
        raise ValueError("promoting a canary one step needs its environment (env=...)")
    new, events = _enter(env, replace(d, failures=0), d.step + 1, now, manual=True)
    return _commit(d, new, events)


def pause(d: Deployment, now: float) -> Decision:
    """``conveyor rollout pause``: hold the rollout where it is (analysis still aborts it)."""
    _need_rollout(d, "pause")
    if d.status == "paused":
        raise DeployError(
            f"{d.env}: the rollout of version {d.candidate} is already paused",
            hint=f"`conveyor rollout resume {d.env}` continues it",
        )
    new = replace(d, status="paused", message=f"paused by hand at step {d.step + 1}")
    event = Event("rollout.paused", {"step": d.step, "weight": d.weight, "reason": "manual"})
    return _commit(d, new, [event])


def resume(d: Deployment, now: float, *, env: Environment | None = None) -> Decision:
    """``conveyor rollout resume``: go on from a pause; the step's clock starts again. At a
    pause without duration the rollout moves to the next step (at once when ``env`` is given,
    else at the next tick)."""
    _need_rollout(d, "resume")
    if d.status != "paused":
        raise DeployError(
            f"{d.env}: the rollout of version {d.candidate} is not paused ({d.status})",
            hint=f"`conveyor rollout pause {d.env}` holds it",
        )
    new = replace(d, status="progressing", step_started=now, message="resumed")
    events = [Event("rollout.resumed", {"step": d.step, "weight": d.weight})]
    steps = _steps(env) if env is not None and d.mode == "canary" else ()
    if env is not None and d.step < len(steps) and steps[d.step].waits_for_resume:
        new, entered = _enter(env, new, d.step + 1, now)
        events += entered
    return _commit(d, new, events)


def abort(d: Deployment, now: float, reason: str = "aborted by hand") -> Decision:
    """``conveyor rollout abort``: all traffic back to stable at once; the candidate stays
    loaded for inspection; the alias does not move."""
    _need_rollout(d, "abort")
    return _commit(d, *_abort(d, now, reason, manual=True))


def fail(d: Deployment, now: float, reason: str) -> Decision:
    """The candidate cannot be judged any more (its process stopped): abort, as a failed
    analysis would, with ``reason``."""
    _need_rollout(d, "abort")
    return _commit(d, *_abort(d, now, reason))


def rollback(d: Deployment, now: float) -> Decision:
    """``conveyor rollback``: the previous stable version serves 100 % again (and its alias
    moves back), whether or not a rollout is on; a running rollout's candidate is dropped."""
    if d.previous is None:
        hint = (
            f"`conveyor rollout abort {d.env}` stops the rollout of version {d.candidate}"
            if d.active
            else "there was no promotion in this environment yet"
        )
        raise DeployError(f"{d.env}: no previous version to roll back to", hint=hint)
    reason = f"rolled back from version {d.stable} to version {d.previous}"
    new = replace(
        d, stable=d.previous, previous=d.stable, candidate=None, status="rolled_back",
        weight=0.0, failures=0, step_started=now, message=reason,
    )  # fmt: skip
    data = {"from": d.stable, "to": d.previous, "candidate": d.candidate if d.active else None,
            "reason": reason}  # fmt: skip
    return _commit(d, new, [Event("rollout.rolled_back", data)])


# ------------------------------------------------------------------------------------ shared


def _promote(d: Deployment, now: float, reason: str, **data: Any) -> Decision:
    new = replace(
        d, status="promoted", stable=d.candidate, previous=d.stable, candidate=None,
        weight=0.0, failures=0, step_started=now,
        message=f"version {d.candidate} promoted: {reason}",
    )  # fmt: skip
    event = {"version": d.candidate, "previous": d.stable, "reason": reason, **data}
    return new, [Event("rollout.promoted", event)]


def _abort(d: Deployment, now: float, reason: str, **data: Any) -> Decision:
    new = replace(
        d, status="aborted", weight=0.0, step_started=now,
        message=f"version {d.candidate} aborted: {reason}",
    )  # fmt: skip
    event = {"version": d.candidate, "stable": d.stable, "step": d.step, "weight": d.weight,
             "failures": d.failures, "reason": reason, **data}  # fmt: skip
    return new, [Event("rollout.aborted", event)]


def _commit(old: Deployment, new: Deployment, events: list[Event]) -> Decision:
    """``new`` with the next revision when anything changed or happened; else ``old``."""
    if not events and new == old:
        return old, []
    return replace(new, revision=old.revision + 1), events


def _need_rollout(d: Deployment, verb: str) -> None:
    if d.active:
        return
    said = f"version {d.stable} is stable" if d.stable is not None else "nothing is deployed"
    last = f"; the last rollout ended {d.status}" if d.status not in ("idle",) else ""
    raise DeployError(
        f"{d.env}: no rollout to {verb}: {said}{last}",
        hint=f"`conveyor deploy MODEL_URI --env {d.env}` starts one",
    )


def _steps(env: Environment) -> tuple[Step, ...]:
    return env.strategy.steps if env.strategy.kind == "canary" else ()


def _strategy(env: Environment) -> dict[str, Any]:
    s = env.strategy
    if s.kind == "canary":
        return {"kind": "canary", "steps": [asdict(step) for step in s.steps]}
    if s.kind == "ab":
        return {"kind": "ab", "split": s.split, "sticky": s.sticky, "metric": s.metric,
                "confidence": s.confidence, "min_samples": s.min_samples}  # fmt: skip
    if s.kind == "shadow":
        return {"kind": "shadow", "fraction": s.fraction, "min_agreement": s.min_agreement,
                "duration": s.duration}  # fmt: skip
    return {"kind": s.kind}
