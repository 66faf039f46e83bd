"""deploy.monitoring: an environment's monitor put together from both sections, its rollback
action on a real project and store, and the lock that keeps it to one per environment."""

from __future__ import annotations

import pytest

from conveyor.deploy import flows
from conveyor.deploy.monitoring import exclusive, open_watch
from conveyor.foundation.errors import LockError
from conveyor.monitor.alerts import Notice
from conveyor.monitor.rules import Condition, Rule, Transition
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


def test_the_monitors_thread_gives_way_to_the_workers() -> None:
    import os
    import threading

    from conveyor.deploy.monitoring import NICE, _below_serving

    seen: list[int] = []
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def work() -> None:
        _below_serving()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [NICE]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # its own only
