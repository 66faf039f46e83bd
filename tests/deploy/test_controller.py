"""The controller's loop on a real project store, with observations scripted and the clock
given: it advances, aborts, yields to a person's change and resumes after a restart."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.deploy import flows
from conveyor.deploy.analysis import Observations, Side
from conveyor.deploy.config import environment as load_environment
from conveyor.deploy.controller import Controller
from conveyor.registry import queries
from conveyor.registry.deployment import Deployment
from conveyor.tracking.db import opened
from tests.conftest import Project
from tests.deploy.projects import environment, package


class Scripted:
    """A source of observations: ``requests`` per side, the candidate failing ``rate`` of
    them; ``during`` runs inside ``observe`` (someone else acting between read and write)."""

    def __init__(self, rate: float = 0.0, requests: int = 200) -> None:
        self.rate = rate
        self.requests = requests
        self.restarts = 0
        self.during: Callable[[], None] | None = None

    def observe(self, record: Deployment) -> Observations:
        if self.during is not None:
            self.during()
            self.during = None
        n = self.requests
        return Observations(Side(requests=n), Side(requests=n, errors=round(n * self.rate)))

    def restart(self) -> None:
        self.restarts += 1

    def idle(self) -> None:
        pass


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def root(project: Project) -> Path:
    """clf versions 1 and 2, v1 deployed to production, v2 rolling out (20 % first)."""
    for n in (1, 2):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(environment(pause="5s", deadline="30s"))
    flows.deploy(project.root, "production", "clf/1")
    return project.root


def start(root: Path, clock: Clock) -> Deployment:
    return flows.deploy(root, "production", "clf/2", now=clock.now)


def controller(root: Path, source: Scripted, clock: Clock) -> Controller:
    env = load_environment(root, "production")
    return Controller(root, env, url="http://127.0.0.1:9", clock=clock, source=source)


def stored(root: Path) -> Deployment:
    with opened(root) as store:
        record = queries.deployment(store.execute, "production")
    assert record is not None
    return record


def alias(root: Path) -> int | None:
    with opened(root) as store:
        return queries.aliases(store.execute, "clf").get("production")


def test_a_good_candidate_goes_through_every_step(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    ctl = controller(root, Scripted(rate=0.0), clock)
    seen = []
    for _ in range(40):  # 5 steps with two 5 s pauses: well within 40 one-second ticks
        record = ctl.tick()
        assert record is not None
        seen.append((record.step, record.weight, record.status))
        if record.status == "promoted":
            break
        clock.now += 1
    final = stored(root)
    assert (final.status, final.stable, final.candidate) == ("promoted", 2, None)
    assert alias(root) == 2
    weights = [w for _, w, status in seen if status == "progressing"]
    assert 20 in weights and 50 in weights
    kinds = [e.kind for e in flows.history(root, "production")]
    assert "rollout.analysis" in kinds and kinds[-1] in ("rollout.promoted", "alias.moved")


def test_a_failing_candidate_is_aborted_at_the_first_analysis(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    record = controller(root, Scripted(rate=0.2), clock).tick()
    assert record is not None
    assert (record.status, record.weight, record.candidate) == ("aborted", 0, 2)
    assert record.split() == {1: 100.0} and alias(root) == 1
    events = flows.history(root, "production")
    analysed = [e for e in events if e.kind == "rollout.analysis"]
    assert analysed and analysed[-1].data["verdict"] == "fail"
    (check,) = analysed[-1].data["checks"]
    assert check["metric"] == "error_rate" and check["verdict"] == "fail"
    assert events[-1].kind == "rollout.aborted"


def test_too_little_traffic_waits_then_aborts_at_the_deadline(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    source = Scripted(requests=3)  # below min_samples: inconclusive, never a pass
    ctl = controller(root, source, clock)
    record = ctl.tick()
    assert record is not None and record.status == "progressing" and record.step == 0
    restarts = source.restarts
    clock.now += 10
    record = ctl.tick()
    assert record is not None and record.step == 0
    assert source.restarts == restarts  # an inconclusive window keeps growing
    clock.now += 30  # past the 30 s deadline
    record = ctl.tick()
    assert record is not None and record.status == "aborted"


def test_a_person_acting_during_a_tick_wins(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    source = Scripted(rate=0.0)
    source.during = lambda: flows.abort(root, "production", "by hand")
    record = controller(root, source, clock).tick()
    assert record is not None and record.status == "aborted"
    assert "by hand" in record.message
    assert stored(root).status == "aborted"
    kinds = [e.kind for e in flows.history(root, "production")]
    assert kinds.count("rollout.aborted") == 1 and "rollout.analysis" not in kinds


def test_a_new_controller_resumes_at_the_same_step(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    first = controller(root, Scripted(), clock)
    record = first.tick()
    assert record is not None and record.step == 1  # the analysis passed: the 5 s pause
    first.close()
    clock.now += 2
    second = controller(root, Scripted(), clock)  # "after a restart": nothing but the store
    record = second.tick()
    assert record is not None and (record.step, record.status) == (1, "progressing")
    clock.now += 4  # the pause's 5 s counted from when it began, not from the restart
    record = second.tick()
    assert record is not None and record.step == 2 and record.weight == 50


def test_run_ticks_until_stopped(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    env = load_environment(root, "production")
    ctl = Controller(root, env, url="http://127.0.0.1:9", clock=clock, source=Scripted(rate=0.5))
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,))
    thread.start()
    try:
        for _ in range(100):
            if stored(root).status == "aborted":
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert stored(root).status == "aborted"
