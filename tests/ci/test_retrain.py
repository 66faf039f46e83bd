"""The retrain flow on a real project, its pipeline and its SQLite store: new data is run, gated,
registered and rolled out; failing gates and an unchanged package stop it; every step is an
event of the environment. And the retrainer a monitor holds: one in flight, a cooldown."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from conveyor.ci.retrain import Retrained, Retrainer, decide, exclusive, retrain
from conveyor.deploy import flows
from conveyor.deploy.errors import UnknownEnvironment
from conveyor.foundation.errors import LockError, PipelineError
from conveyor.registry import queries
from conveyor.tracking.db import opened
from conveyor.tracking.events import Event
from tests.ci.retraining import deployed, rows
from tests.conftest import Project


@pytest.fixture
def proj(project: Project) -> Project:
    return deployed(project)


def hms(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def retrains(root: Path) -> list[Event]:
    """The environment's retrain events, oldest first."""
    return [e for e in flows.history(root, "production") if e.kind.startswith("retrain.")]


def versions(root: Path) -> list[int]:
    with opened(root) as store:
        return [v.version for v in queries.versions(store.execute, "clf")]


def production(root: Path) -> int | None:
    with opened(root) as store:
        return queries.aliases(store.execute, "clf").get("production")


def test_new_data_is_run_gated_registered_and_rolled_out(proj: Project, tmp_path: Path) -> None:
    proj.ok("remote", "add", "store", str(tmp_path / "remote"), "--default")
    proj.ok("push")
    proj.write("data/rows.csv", rows(30))
    done = retrain(proj.root, "production", reason="drift on x")
    assert done.outcome == "rollout_started", done.error
    assert [(s.name, s.result) for s in done.steps] == [
        ("pull", "0 object(s) fetched"),
        ("run", "1 ran"),
        ("check", "passed"),
        ("register", f"registered clf version 2 from run {done.checked and done.checked.run}"),
        ("deploy", "progressing, 20 % candidate"),
    ]
    assert done.version == "models:/clf/2" and done.error is None
    assert done.rollout is not None and (done.rollout.stable, done.rollout.candidate) == (1, 2)
    assert done.message == "production: retrained; rolling out models:/clf/2 over version 1"
    (rollout,) = flows.status(proj.root, "production")
    assert rollout.record is not None and rollout.record.candidate == 2
    assert rollout.record.status == "progressing" and production(proj.root) == 1

    events = flows.history(proj.root, "production")
    events = events[[e.kind for e in events].index("retrain.started") :]
    history = [e for e in events if e.kind.startswith(("retrain.", "rollout.started"))]
    assert [e.kind for e in history] == [
        "retrain.started",
        *["retrain.step"] * 3,
        "retrain.registered",
        "retrain.step",
        "rollout.started",
        "retrain.step",
        "retrain.rollout_started",
    ]
    assert history[0].data == {"reason": "drift on x", "model": "clf"}
    assert [e.data["step"] for e in history if e.kind == "retrain.step"] == [
        "pull", "run", "check", "register", "deploy",
    ]  # fmt: skip
    assert done.checked is not None
    assert history[4].data == {"model": "clf", "version": 2, "run": done.checked.run}
    assert history[-1].data == {"version": 2, "stable": 1, "status": "progressing", "weight": 20}


def test_failing_gates_stop_it_and_leave_production_alone(proj: Project) -> None:
    proj.write("data/rows.csv", rows(20, flipped=True))
    done = retrain(proj.root, "production", reason="drift")
    assert done.outcome == "gates_failed" and done.version is None and done.rollout is None
    assert [s.name for s in done.steps] == ["pull", "run", "check"]
    assert done.steps[-1].result.startswith("FAILED (") and "accuracy" in done.steps[-1].result
    assert done.checked is not None and done.checked.verdict == "fail"
    assert "the gates failed" in done.message
    assert versions(proj.root) == [1] and production(proj.root) == 1
    (rollout,) = flows.status(proj.root, "production")
    assert rollout.record is not None and rollout.record.candidate is None
    last = retrains(proj.root)[-1]
    assert last.kind == "retrain.gates_failed" and "accuracy" in last.data["failed"]
    assert last.data["run"] == done.checked.run


def test_nothing_changed_registers_nothing(proj: Project) -> None:
    done = retrain(proj.root, "production", reason="scheduled")
    assert done.outcome == "unchanged" and done.version is None and done.rollout is None
    assert [(s.name, s.result) for s in done.steps][1:] == [
        ("run", "1 up to date"),
        ("check", "passed"),
        ("register", "clf unchanged: version 1 is this package"),
    ]
    assert versions(proj.root) == [1]
    assert retrains(proj.root)[-1].kind == "retrain.unchanged"
    assert retrains(proj.root)[-1].data == {"model": "clf", "version": 1}


def test_a_step_that_cannot_be_done_fails_it_with_its_error(proj: Project) -> None:
    proj.write("train.py", "raise SystemExit('no rows today')\n")
    done = retrain(proj.root, "production", reason="drift")
    assert done.outcome == "failed" and done.step == "run"
    assert isinstance(done.error, PipelineError) and "no rows today" in done.error.message
    assert done.steps[-1].name == "run" and done.steps[-1].result == "exit 1"
    assert "failed at step run: stage train failed: no rows today" in done.message
    last = retrains(proj.root)[-1]
    assert last.kind == "retrain.failed" and last.data["step"] == "run"

    unknown = retrain(proj.root, "productoin", reason="typo")
    assert unknown.outcome == "failed" and unknown.step == "start" and unknown.steps == []
    assert isinstance(unknown.error, UnknownEnvironment)
    assert unknown.error.hint is not None and "production" in unknown.error.hint


@pytest.mark.parametrize(
    ("now", "last_end", "in_flight", "said"),
    [
        (1000.0, None, False, "started"),
        (1000.0, None, True, "refused: one in flight"),
        (1000.0, 500.0, True, "refused: one in flight"),
        (1000.0, 500.0, False, "started"),  # 500 s ago, cooldown 300 s
        (1000.0, 800.0, False, f"refused: cooldown until {hms(1100.0)}"),
        (1100.0, 800.0, False, "started"),  # the cooldown's last second is over
    ],
)  # fmt: skip
def test_decide(now: float, last_end: float | None, in_flight: bool, said: str) -> None:
    decision = decide(now=now, last_end=last_end, in_flight=in_flight, cooldown=300.0)
    assert decision.said() == said
    assert decision.start == (said == "started")


def test_one_retrain_in_flight_at_a_time(proj: Project) -> None:
    heard: list[Retrained] = []
    retrainer = Retrainer(proj.root, "production", cooldown=0.0, on_done=heard.append)
    proj.write("data/rows.csv", rows(30))
    hold = proj.write("hold", "")  # the stage waits while this file is there
    assert retrainer.request("drift") == "started"
    assert retrainer.request("drift again") == "refused: one in flight"
    other = Retrainer(proj.root, "production", cooldown=0.0)  # a second server of the project
    assert other.request("drift seen there") == "refused: one in flight"
    with (
        pytest.raises(LockError, match="a retrain is in flight"),
        exclusive(proj.root, "production"),
    ):
        pass
    hold.unlink()
    assert retrainer.wait(60)
    assert [d.outcome for d in heard] == ["rollout_started"]
    assert retrains(proj.root)[0].data["reason"] == "drift"
    with exclusive(proj.root, "production"):  # a retrain by hand holds off the servers
        assert retrainer.request("drift") == "refused: one in flight"
    assert retrainer.request("drift") == "started" and retrainer.wait(60)


def test_the_cooldown_counts_from_the_last_end_and_survives_a_restart(proj: Project) -> None:
    now = [1_000_000.0]
    clock = lambda: now[0]  # noqa: E731
    ended = threading.Event()
    retrainer = Retrainer(
        proj.root, "production", cooldown=600.0, on_done=lambda _: ended.set(), clock=clock
    )
    assert retrainer.request("first") == "started"
    assert ended.wait(60) and retrainer.wait(60)
    until = hms(now[0] + 600)
    now[0] += 599
    assert retrainer.request("too soon") == f"refused: cooldown until {until}"
    restarted = Retrainer(proj.root, "production", cooldown=600.0, clock=clock)
    assert restarted.request("too soon after a restart") == f"refused: cooldown until {until}"
    now[0] += 1
    assert restarted.request("in time") == "started" and restarted.wait(60)
    assert [e.data["reason"] for e in retrains(proj.root) if e.kind == "retrain.started"] == [
        "first",
        "in time",
    ]
