"""deploy.monitoring: an environment's monitor put together from both sections, its rollback
action on a real project and store, and the lock that keeps it to one per environment."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conveyor.deploy import flows
from conveyor.deploy.monitoring import exclusive, open_watch, start_thread
from conveyor.foundation.errors import LockError
from conveyor.monitor.alerts import Notice
from conveyor.monitor.rules import Condition, Rule, Transition
from conveyor.monitor.watch import Tick
from tests.ci.retraining import deployed, rows
from tests.conftest import Project

MONITOR = """\
monitor:
  production:
    reference: data/rows.csv
    label: y
    window: {rows: 50}
    alerts:
      - {name: errors, when: "error_rate > 0.05", for: 1m, action: rollback}
"""


def test_the_rollback_action_moves_production_back(project: Project) -> None:
    deployed(project)
    project.write("data/rows.csv", rows(30))
    project.ok("run", "--register")
    project.ok("deploy", "clf/2", "--env", "production")
    project.ok("rollout", "promote", "production", "--full")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(MONITOR)
    watch = open_watch(project.root, "production", url=False, notify=False)
    assert watch.model == "clf" and watch.roles() == {"2": "stable"}
    rule = Rule("errors", Condition("error_rate", ">", 0.05), action="rollback")
    fired = Transition("errors", "firing", 0.2, 0.0, None, 0.0)
    said = watch.actions["rollback"](Notice("production", "clf", rule, fired), lambda *a: None)
    assert said == "rolled back to version 1"
    (rollout,) = flows.status(project.root, "production")
    assert rollout.record is not None and rollout.record.stable == 1


def test_one_monitor_per_environment(project: Project) -> None:
    deployed(project)
    with (
        exclusive(project.root, "production"),
        pytest.raises(LockError, match="monitor"),
        exclusive(project.root, "production"),
    ):
        pass


class SlowWatch:
    """A watch whose looks take ``took`` seconds (as on cores a load keeps busy)."""

    def __init__(self, root: Path, took: list[float]) -> None:
        self.root = root
        self.spec = SimpleNamespace(env="production", interval=0.02)
        self.notifier = None
        self.took = took
        self.calls: list[str] = []

    def tick(self) -> Tick:
        time.sleep(self.took.pop(0) if self.took else 0.0)
        self.calls.append("tick")
        return Tick()

    def catch_up(self) -> int:
        self.calls.append("catch_up")
        return 0


def test_a_look_that_falls_behind_is_told_once_and_its_end(tmp_path: Path) -> None:
    said: list[str] = []
    stop = threading.Event()
    # 5 intervals each, three times; the first look (a backlog since the last run) not told
    watch = SlowWatch(tmp_path, [0.1, 0.0, 0.1, 0.1, 0.1, 0.0])
    thread = start_thread(watch, stop=stop, notify=said.append)  # type: ignore[arg-type]
    assert thread is not None
    deadline = time.monotonic() + 10
    while len(said) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert said[0].startswith("monitor production: a look took 0 s (interval 0.02 s)")
    assert "its alerts come late" in said[0]
    assert said[1:] == ["monitor production: on time again"]


def test_between_looks_the_log_is_read_in_small_steps(tmp_path: Path) -> None:
    stop = threading.Event()
    watch = SlowWatch(tmp_path, [])
    watch.spec.interval = 1.0  # STEP 0.25 s: three catch-ups between two looks
    thread = start_thread(watch, stop=stop, notify=lambda message: None)  # type: ignore[arg-type]
    assert thread is not None
    deadline = time.monotonic() + 10
    while watch.calls.count("tick") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    first, second = [i for i, call in enumerate(watch.calls) if call == "tick"][:2]
    between = watch.calls[first + 1 : second]
    assert set(between) == {"catch_up"} and 2 <= len(between) <= 4  # timers are not exact
