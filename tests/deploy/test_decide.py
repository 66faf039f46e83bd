"""The rollout decision walked through every strategy with a fake clock: no store, no server."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.deploy import decide as rollout
from conveyor.deploy.analysis import CheckResult, Verdict
from conveyor.deploy.config import Analysis, Environment, Step, Strategy
from conveyor.deploy.decide import Event, abort, decide, pause, promote, resume, rollback, start
from conveyor.deploy.errors import DeployError
from conveyor.registry.deployment import Deployment

CANARY = Environment("prod", "clf")  # 10 %, pause 30 s, 50 %, pause 30 s, 100 %


def check(verdict: Verdict, metric: str = "error_rate") -> CheckResult:
    return CheckResult(metric, verdict, 0.001, 0.3 if verdict == "fail" else 0.002, 0.01,
                       (1000, 200), f"{metric} {verdict}")  # fmt: skip


def results(verdict: Verdict) -> list[CheckResult]:
    return [check(verdict), check("pass", "latency_p99")]


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def stable_at(version: int, env: Environment = CANARY) -> Deployment:
    record, _ = start(env, None, version, now=0.0)
    return record


def with_env(**changes: object) -> Environment:
    return replace(CANARY, **changes)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------- first deploy


def test_the_first_deploy_goes_straight_to_100_percent() -> None:
    record, events = start(CANARY, None, 1, now=5.0)
    assert (record.stable, record.candidate, record.status) == (1, None, "promoted")
    assert record.split() == {1: 100.0} and record.weight == 0
    assert record.previous is None and record.revision == 1
    assert kinds(events) == ["rollout.started", "rollout.promoted"]
    assert events[0].data == {"version": 1, "stable": None, "mode": "canary", "first": True}
    assert events[1].data["reason"] == "first deploy"


def test_a_first_deploy_after_a_change_of_model_starts_over() -> None:
    other = replace(stable_at(4), model="ranker", previous=3)
    record, events = start(CANARY, other, 1, now=1.0)
    assert (record.model, record.stable, record.previous) == ("clf", 1, None)
    assert record.status == "promoted"
    assert record.revision == other.revision + 1
    assert "was ranker" in events[1].data["reason"]


def test_events_unpack_as_the_pairs_the_store_appends() -> None:
    _, events = start(CANARY, None, 1, now=0.0)
    kind, data = events[0]
    assert kind == "rollout.started" and data["version"] == 1


# ------------------------------------------------------------------------------------- canary


def test_a_good_canary_walks_every_step_to_promotion() -> None:
    d, events = start(CANARY, stable_at(1), 2, now=100.0)
    assert (d.stable, d.candidate, d.status, d.step, d.weight) == (1, 2, "progressing", 0, 10)
    assert d.split() == {1: 90.0, 2: 10.0} and d.started == d.step_started == 100.0
    assert kinds(events) == ["rollout.started", "rollout.step"]
    assert events[0].data["strategy"]["steps"][1] == {"weight": None, "pause": 30.0}
    assert events[1].data == {"step": 0, "steps": 5, "weight": 10.0}
    revisions = [d.revision]

    d, events = decide(CANARY, d, results("pass"), now=101.0)  # 10 % passed: the pause
    assert (d.step, d.weight, d.step_started) == (1, 10, 101.0)
    assert kinds(events) == ["rollout.analysis", "rollout.step"]
    assert events[1].data["pause"] == 30.0
    revisions.append(d.revision)

    same, events = decide(CANARY, d, None, now=120.0)  # nothing to do yet
    assert same is d and events == []
    d, events = decide(CANARY, d, results("pass"), now=120.0)  # analysed, still pausing
    assert d.step == 1 and kinds(events) == ["rollout.analysis"]
    revisions.append(d.revision)

    d, events = decide(CANARY, d, None, now=131.0)  # the pause is over: 50 %
    assert (d.step, d.weight, d.split()) == (2, 50, {1: 50.0, 2: 50.0})
    assert kinds(events) == ["rollout.step"]
    revisions.append(d.revision)

    d, events = decide(CANARY, d, results("inconclusive"), now=132.0)  # waits for a pass
    assert d.step == 2 and d.failures == 0
    d, _ = decide(CANARY, d, results("pass"), now=133.0)
    assert (d.step, d.weight) == (3, 50)
    revisions.append(d.revision)

    d, events = decide(CANARY, d, None, now=163.0)  # 100 %: nothing left to compare with
    assert (d.status, d.stable, d.previous, d.candidate, d.weight) == ("promoted", 2, 1, None, 0)
    assert d.split() == {2: 100.0}
    assert kinds(events) == ["rollout.step", "rollout.promoted"]
    assert events[0].data["weight"] == 100
    assert events[1].data == {"version": 2, "previous": 1, "reason": "every step passed"}
    revisions.append(d.revision)
    assert revisions == sorted(set(revisions))  # every change is a new revision

    assert decide(CANARY, d, results("fail"), now=200.0) == (d, [])  # over: nothing happens


def test_the_analysis_event_carries_the_values_thresholds_and_sample_sizes() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    _, events = decide(CANARY, d, results("inconclusive"), now=1.0)
    (event,) = events
    assert event.kind == "rollout.analysis"
    assert event.data["verdict"] == "inconclusive" and event.data["step"] == 0
    assert event.data["failure_limit"] == 1 and event.data["weight"] == 10
    assert event.data["checks"][0] == {
        "metric": "error_rate", "verdict": "inconclusive", "stable": 0.001, "candidate": 0.002,
        "threshold": 0.01, "samples": [1000, 200], "detail": "error_rate inconclusive",
    }  # fmt: skip


def test_a_failing_analysis_aborts_at_once_with_failure_limit_1() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    d, _ = decide(CANARY, d, results("pass"), now=1.0)
    d, _ = decide(CANARY, d, None, now=31.0)  # 50 %
    d, events = decide(CANARY, d, results("fail"), now=32.0)
    assert (d.status, d.weight, d.stable, d.candidate) == ("aborted", 0, 1, 2)
    assert d.split() == {1: 100.0} and not d.active
    assert kinds(events) == ["rollout.analysis", "rollout.aborted"]
    aborted = events[1].data
    assert (aborted["version"], aborted["stable"], aborted["weight"], aborted["step"]) == (
        2,
        1,
        50,
        2,
    )
    assert aborted["checks"] == [check("fail").to_dict()]  # the failing values, not the passing
    assert "failure_limit 1" in aborted["reason"] and "error_rate fail" in aborted["reason"]
    assert "aborted" in d.message


def test_failures_in_a_row_count_up_to_the_limit() -> None:
    env = with_env(analysis=Analysis(failure_limit=3))
    d, _ = start(env, stable_at(1, env), 2, now=0.0)
    for now, verdict, failures in [(1, "fail", 1), (2, "fail", 2), (3, "inconclusive", 2),
                                   (4, "pass", 0), (5, "fail", 1), (6, "fail", 2)]:  # fmt: skip
        d, _ = decide(env, d, results(verdict), now=float(now))  # type: ignore[arg-type]
        assert d.failures == failures and d.active
    assert d.step == 1  # the pass at t=4 completed the 10 % step
    d, events = decide(env, d, results("fail"), now=7.0)
    assert d.status == "aborted" and events[-1].data["failures"] == 3


def test_a_timed_pause_does_not_end_on_a_failed_analysis() -> None:
    env = with_env(analysis=Analysis(failure_limit=2))
    d, _ = start(env, stable_at(1, env), 2, now=0.0)
    d, _ = decide(env, d, results("pass"), now=1.0)  # pause 30 s from t=1
    d, _ = decide(env, d, results("fail"), now=40.0)
    assert (d.step, d.failures) == (1, 1)  # time is up, but the last analysis failed
    d, _ = decide(env, d, None, now=41.0)
    assert d.step == 1
    d, _ = decide(env, d, results("pass"), now=42.0)
    assert (d.step, d.weight) == (2, 50)


def test_inconclusive_waits_then_the_deadline_aborts() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    for now in range(1, 600, 60):
        d, _ = decide(CANARY, d, results("inconclusive"), now=float(now))
        assert (d.status, d.step) == ("progressing", 0)
    d, _ = decide(CANARY, d, None, now=599.0)
    assert d.status == "progressing"
    d, events = decide(CANARY, d, None, now=600.0)
    assert (d.status, d.weight, d.candidate) == ("aborted", 0, 2)
    assert kinds(events) == ["rollout.aborted"]
    assert events[0].data["deadline"] is True
    assert "inconclusive 600 s" in events[0].data["reason"]
    assert "on_deadline: abort" in events[0].data["reason"]


def test_on_deadline_promote_promotes_never_silently() -> None:
    env = with_env(analysis=Analysis(deadline=60.0, on_deadline="promote"))
    d, _ = start(env, stable_at(1, env), 2, now=0.0)
    d, _ = decide(env, d, results("inconclusive"), now=30.0)
    d, events = decide(env, d, results("inconclusive"), now=60.0)
    assert (d.status, d.stable, d.previous) == ("promoted", 2, 1)
    assert kinds(events) == ["rollout.analysis", "rollout.promoted"]
    assert events[1].data["deadline"] is True
    assert "on_deadline: promote" in events[1].data["reason"]


def test_on_deadline_promote_never_promotes_after_a_failed_analysis() -> None:
    env = with_env(analysis=Analysis(deadline=60.0, on_deadline="promote", failure_limit=2))
    d, _ = start(env, stable_at(1, env), 2, now=0.0)
    d, _ = decide(env, d, results("fail"), now=30.0)
    d, events = decide(env, d, results("inconclusive"), now=60.0)
    assert d.status == "aborted" and "the last one failed" in events[-1].data["reason"]


def test_a_timed_pause_deadline_counts_from_the_end_of_the_pause() -> None:
    env = with_env(
        strategy=Strategy("canary", (Step(weight=10), Step(pause=100), Step(weight=50))),
        analysis=Analysis(deadline=60.0, failure_limit=3),
    )
    d, _ = start(env, stable_at(1, env), 2, now=0.0)
    d, _ = decide(env, d, results("pass"), now=0.0)  # pause 100 s from t=0
    d, _ = decide(env, d, results("fail"), now=120.0)  # can't end: failed
    assert d.active
    d, _ = decide(env, d, None, now=159.0)
    assert d.active
    d, _ = decide(env, d, None, now=160.0)
    assert d.status == "aborted"


# --------------------------------------------------------------------------- pause and resume


PAUSING = with_env(strategy=Strategy("canary", (Step(weight=10), Step(), Step(weight=50))))


def test_a_pause_without_duration_waits_for_resume() -> None:
    d, _ = start(PAUSING, stable_at(1, PAUSING), 2, now=0.0)
    d, events = decide(PAUSING, d, results("pass"), now=1.0)
    assert (d.status, d.step, d.weight) == ("paused", 1, 10)
    assert kinds(events) == ["rollout.analysis", "rollout.step", "rollout.paused"]
    assert events[2].data == {"step": 1, "reason": "step"}
    assert "rollout resume prod" in d.message
    for now in (2.0, 1000.0, 100_000.0):  # no deadline while a person holds it
        d, _ = decide(PAUSING, d, results("inconclusive"), now=now)
        d, _ = decide(PAUSING, d, None, now=now)
        assert (d.status, d.step) == ("paused", 1)
    d, events = resume(d, now=100_001.0)
    assert (d.status, d.step, d.step_started) == ("progressing", 1, 100_001.0)
    assert kinds(events) == ["rollout.resumed"]
    d, events = decide(PAUSING, d, None, now=100_002.0)
    assert (d.status, d.step, d.weight) == ("progressing", 2, 50)


def test_resume_with_the_environment_moves_on_at_once() -> None:
    d, _ = start(PAUSING, stable_at(1, PAUSING), 2, now=0.0)
    d, _ = decide(PAUSING, d, results("pass"), now=1.0)
    d, events = resume(d, now=5.0, env=PAUSING)
    assert (d.status, d.step, d.weight) == ("progressing", 2, 50)
    assert kinds(events) == ["rollout.resumed", "rollout.step"]


def test_a_paused_rollout_still_aborts_on_a_failed_analysis() -> None:
    d, _ = start(PAUSING, stable_at(1, PAUSING), 2, now=0.0)
    d, _ = decide(PAUSING, d, results("pass"), now=1.0)
    d, _ = decide(PAUSING, d, results("fail"), now=2.0)
    assert d.status == "aborted" and d.weight == 0


def test_pause_and_resume_by_hand() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    d, events = pause(d, now=1.0)
    assert d.status == "paused" and d.split() == {1: 90.0, 2: 10.0}  # traffic stays
    assert events[0].kind == "rollout.paused" and events[0].data["reason"] == "manual"
    with pytest.raises(DeployError, match="already paused") as info:
        pause(d, now=2.0)
    assert info.value.hint == "`conveyor rollout resume prod` continues it"
    d, _ = decide(CANARY, d, results("pass"), now=3.0)
    assert (d.status, d.step) == ("paused", 0)  # a pass does not move a paused rollout
    d, _ = decide(CANARY, d, None, now=5000.0)
    assert d.status == "paused"  # nor does the deadline
    d, _ = resume(d, now=5001.0)
    assert (d.status, d.step_started) == ("progressing", 5001.0)
    with pytest.raises(DeployError, match="is not paused"):
        resume(d, now=5002.0)
    d, _ = decide(CANARY, d, results("pass"), now=5002.0)
    assert d.step == 1


# ------------------------------------------------------------------------------- by hand


def test_promote_moves_a_canary_one_step_and_full_to_the_end() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    d, events = promote(d, now=1.0, env=CANARY)  # skip the 10 % analysis: the pause
    assert (d.step, d.weight) == (1, 10) and events[0].data["manual"] is True
    d, events = promote(d, now=2.0, env=CANARY)  # skip the pause: 50 %
    assert (d.step, d.weight) == (2, 50)
    d, events = promote(d, now=3.0, full=True)
    assert (d.status, d.stable, d.previous, d.candidate) == ("promoted", 2, 1, None)
    assert kinds(events) == ["rollout.promoted"]
    assert events[0].data["full"] is True and events[0].data["step"] == 2
    assert "--full" in events[0].data["reason"]


def test_promote_at_a_pause_without_duration_continues() -> None:
    d, _ = start(PAUSING, stable_at(1, PAUSING), 2, now=0.0)
    d, _ = decide(PAUSING, d, results("pass"), now=1.0)
    d, _ = promote(d, now=2.0, env=PAUSING)
    assert (d.status, d.step, d.weight) == ("progressing", 2, 50)
    d, events = promote(d, now=3.0, env=PAUSING)  # past the last step: promoted
    assert d.status == "promoted" and kinds(events) == ["rollout.promoted"]


def test_promoting_a_canary_one_step_needs_its_steps() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    with pytest.raises(ValueError, match="env"):
        promote(d, now=1.0)


def test_abort_by_hand_keeps_the_candidate() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    d, events = abort(d, now=1.0, reason="looks wrong")
    assert (d.status, d.weight, d.stable, d.candidate) == ("aborted", 0, 1, 2)
    assert events[0].data["reason"] == "looks wrong" and events[0].data["manual"] is True


@pytest.mark.parametrize("command", ["promote", "pause", "resume", "abort"])
def test_commands_without_a_rollout_are_refused_with_the_reason(command: str) -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    d, _ = abort(d, now=1.0)
    with pytest.raises(DeployError) as info:
        getattr(rollout, command)(d, 2.0)
    assert info.value.message == (
        f"prod: no rollout to {command}: version 1 is stable; the last rollout ended aborted"
    )
    assert info.value.hint == "`conveyor deploy MODEL_URI --env prod` starts one"


def test_rollback_returns_to_the_previous_version_and_back_again() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    d, _ = promote(d, now=1.0, full=True)
    d, events = rollback(d, now=2.0)
    assert (d.stable, d.previous, d.candidate, d.status, d.weight) == (1, 2, None, "rolled_back", 0)
    assert d.split() == {1: 100.0}
    assert events[0].kind == "rollout.rolled_back"
    assert (events[0].data["from"], events[0].data["to"], events[0].data["candidate"]) == (
        2,
        1,
        None,
    )
    d, _ = rollback(d, now=3.0)  # the previous one is now 2
    assert (d.stable, d.previous) == (2, 1)


def test_rollback_during_a_rollout_drops_the_candidate() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    d, _ = promote(d, now=1.0, full=True)
    d, _ = start(CANARY, d, 3, now=2.0)
    d, events = rollback(d, now=3.0)
    assert (d.stable, d.previous, d.candidate, d.status) == (1, 2, None, "rolled_back")
    assert events[0].data["candidate"] == 3 and not d.active


def test_rollback_without_a_previous_version_is_refused() -> None:
    with pytest.raises(DeployError, match="no previous version") as info:
        rollback(stable_at(1), now=1.0)
    assert info.value.hint == "there was no promotion in this environment yet"
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    with pytest.raises(DeployError) as info:
        rollback(d, now=1.0)
    assert info.value.hint == "`conveyor rollout abort prod` stops the rollout of version 2"


def test_start_refuses_a_stable_version_and_a_second_rollout() -> None:
    with pytest.raises(DeployError, match="version 1 is already stable") as info:
        start(CANARY, stable_at(1), 1, now=0.0)
    assert "rollback" in (info.value.hint or "")
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    with pytest.raises(DeployError, match="a rollout of clf version 2 is progressing") as info:
        start(CANARY, d, 3, now=1.0)
    assert "rollout abort prod" in (info.value.hint or "")


def test_after_an_abort_a_new_rollout_may_start() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    d, _ = abort(d, now=1.0)
    d, _ = start(CANARY, d, 2, now=2.0)  # a retry of the same candidate
    assert (d.status, d.candidate, d.step, d.failures, d.started) == ("progressing", 2, 0, 0, 2.0)


# ------------------------------------------------------------------------ other strategies


def test_shadow_copies_for_its_duration_then_promotes_on_a_pass() -> None:
    env = with_env(strategy=Strategy("shadow", fraction=0.5, duration=60.0))
    d, events = start(env, stable_at(1, env), 2, now=0.0)
    assert (d.mode, d.weight, d.status) == ("shadow", 50.0, "progressing")
    assert d.split() == {1: 100.0}  # copies answer nobody
    assert events[1].data["weight"] == 50.0
    d, _ = decide(env, d, results("pass"), now=30.0)
    assert d.status == "progressing"  # not before its duration
    d, events = decide(env, d, results("pass"), now=60.0)
    assert (d.status, d.stable, d.previous) == ("promoted", 2, 1)
    assert events[-1].data["checks"] == [r.to_dict() for r in results("pass")]


def test_shadow_waits_up_to_the_deadline_after_its_duration() -> None:
    env = with_env(strategy=Strategy("shadow", duration=600.0), analysis=Analysis(deadline=60.0))
    d, _ = start(env, stable_at(1, env), 2, now=0.0)
    d, _ = decide(env, d, results("inconclusive"), now=640.0)
    assert d.status == "progressing"
    d, _ = decide(env, d, results("inconclusive"), now=660.0)
    assert d.status == "aborted"


def test_shadow_disagreement_aborts() -> None:
    env = with_env(strategy=Strategy("shadow"))
    d, _ = start(env, stable_at(1, env), 2, now=0.0)
    d, events = decide(env, d, [check("fail", "agreement")], now=10.0)
    assert d.status == "aborted" and "agreement" in events[-1].data["reason"]


def test_blue_green_switches_all_at_once_after_a_pass() -> None:
    env = with_env(strategy=Strategy("blue_green"))
    d, _ = start(env, stable_at(1, env), 2, now=0.0)
    assert (d.mode, d.weight, d.split()[1]) == ("blue_green", 0.0, 100.0)  # copies answer nobody
    d, _ = decide(env, d, results("inconclusive"), now=1.0)
    assert d.status == "progressing"
    d, events = decide(env, d, results("pass"), now=2.0)
    assert (d.status, d.stable, d.split()) == ("promoted", 2, {2: 100.0})
    assert "blue-green" in events[-1].data["reason"]


AB = with_env(strategy=Strategy("ab", split=30, sticky="header:x-user-id", min_samples=500))


def ab(verdict: Verdict) -> list[CheckResult]:
    comparison = {"estimate": 0.03, "low": 0.01, "high": 0.05, "p_value": 0.001,
                  "n_candidate": 600, "n_baseline": 600}  # fmt: skip
    result = CheckResult("ab", verdict, 0.80, 0.83, 0.0, (600, 600), f"ab {verdict}", comparison)
    return [*results("pass"), result]


def test_ab_keeps_its_split_until_the_verdict_then_promotes_a_better_candidate() -> None:
    d, events = start(AB, stable_at(1, AB), 2, now=0.0)
    assert (d.mode, d.weight, d.sticky) == ("ab", 30, "header:x-user-id")
    assert d.split() == {1: 70.0, 2: 30.0}
    assert events[0].data["strategy"]["min_samples"] == 500
    d, events = decide(AB, d, ab("inconclusive"), now=10.0)
    assert (d.status, d.weight) == ("progressing", 30)  # guards passed: no steps to take
    d, events = decide(AB, d, ab("pass"), now=20.0)
    assert kinds(events) == ["rollout.analysis", "rollout.verdict", "rollout.promoted"]
    verdict = events[1].data
    assert (verdict["low"], verdict["p_value"], verdict["decision"]) == (0.01, 0.001, "promote")
    assert verdict["metric"] == "accuracy"
    assert (d.status, d.stable, d.previous) == ("promoted", 2, 1)
    assert events[2].data["verdict"]["estimate"] == 0.03


def test_ab_without_a_better_candidate_aborts_with_its_verdict() -> None:
    d, _ = start(AB, stable_at(1, AB), 2, now=0.0)
    d, events = decide(AB, d, ab("fail"), now=20.0)
    assert kinds(events) == ["rollout.analysis", "rollout.verdict", "rollout.aborted"]
    assert events[1].data["decision"] == "abort"
    assert d.status == "aborted" and d.weight == 0 and d.stable == 1


def test_ab_at_its_deadline_records_the_verdict_it_has() -> None:
    d, _ = start(AB, stable_at(1, AB), 2, now=0.0)
    d, events = decide(AB, d, ab("inconclusive"), now=600.0)
    assert kinds(events) == ["rollout.analysis", "rollout.verdict", "rollout.aborted"]
    assert events[1].data["detail"] == "deadline reached: ab inconclusive"
    assert d.status == "aborted"


def test_ab_guards_abort_before_any_verdict() -> None:
    d, _ = start(AB, stable_at(1, AB), 2, now=0.0)
    guard_failed = [check("fail"), ab("pass")[-1]]
    d, events = decide(AB, d, guard_failed, now=5.0)
    assert kinds(events) == ["rollout.analysis", "rollout.aborted"]
    assert d.status == "aborted"


def test_manual_promote_of_an_ab_test_promotes_at_once() -> None:
    d, _ = start(AB, stable_at(1, AB), 2, now=0.0)
    d, _ = promote(d, now=1.0)
    assert (d.status, d.stable) == ("promoted", 2)


# ------------------------------------------------------------------------------ invariants


ENVIRONMENTS = [
    CANARY,
    PAUSING,
    AB,
    with_env(strategy=Strategy("shadow", duration=5.0)),
    with_env(strategy=Strategy("blue_green")),
    with_env(analysis=Analysis(failure_limit=2, deadline=20.0, on_deadline="promote")),
]
VERDICTS: list[Verdict] = ["pass", "fail", "inconclusive"]
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["tick", "tick", "tick", "idle", "deploy", "promote", "full", "pause",
                         "resume", "abort", "rollback"]),
        st.sampled_from(VERDICTS),
        st.floats(min_value=0, max_value=40),
    ),
    max_size=40,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(env_index=st.integers(0, len(ENVIRONMENTS) - 1), operations=OPERATIONS)
def test_invariants_hold_whatever_happens(
    env_index: int, operations: list[tuple[str, Verdict, float]]
) -> None:
    env = ENVIRONMENTS[env_index]
    now = 0.0
    d, _ = start(env, None, 1, now)
    version = 1
    for op, verdict, dt in operations:
        now += dt
        before = d
        try:
            if op == "tick":
                extra = ab(verdict)[-1:] if d.mode == "ab" else []
                d, events = decide(env, d, [*results(verdict), *extra], now)
            elif op == "idle":
                d, events = decide(env, d, None, now)
            elif op == "deploy":
                version += 1
                d, events = start(env, d, version, now)
            elif op in ("promote", "full"):
                d, events = promote(d, now, op == "full", env=env)
            elif op == "pause":
                d, events = pause(d, now)
            elif op == "resume":
                d, events = resume(d, now)
            elif op == "abort":
                d, events = abort(d, now)
            else:
                d, events = rollback(d, now)
        except DeployError:
            assert d is before
            continue
        assert 0 <= d.weight <= 100
        assert d.stable is not None  # never lost after the first deploy
        assert (d.revision > before.revision) == bool(events) or d == before
        assert (d is before) == (not events)
        if d.status == "aborted":
            assert d.weight == 0 and d.candidate is not None
            assert d.split() == {d.stable: 100.0}
        if d.status in ("promoted", "rolled_back"):
            assert d.candidate is None and d.weight == 0
        if d.active:
            assert d.candidate is not None and d.candidate != d.stable
        assert all(e.kind.startswith("rollout.") for e in events)
        assert sum(d.split().values()) == pytest.approx(100.0)


def test_a_strategy_changed_under_a_running_rollout_aborts_it() -> None:
    d, _ = start(CANARY, stable_at(1), 2, now=0.0)
    d, _ = decide(CANARY, d, results("pass"), now=1.0)
    d, _ = decide(CANARY, d, None, now=31.0)  # step 3 of 5
    shorter = with_env(strategy=Strategy("canary", (Step(weight=10),)))
    aborted, events = decide(shorter, d, None, now=32.0)
    assert aborted.status == "aborted" and aborted.stable == 1
    assert events[0].data["reason"] == "the canary has 1 steps now; this rollout was at step 3"
    other, events = decide(AB, d, results("pass"), now=32.0)
    assert other.status == "aborted"
    assert events[-1].data["reason"] == "the strategy is ab now; this rollout began as canary"
