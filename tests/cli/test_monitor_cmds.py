"""`conveyor monitor status|run|watch` on a project whose prediction log and feedback are on
disk (written as the server writes them): the table of checks, the alerts, the exit codes, and
the state another monitor holds."""

from __future__ import annotations

import json

import pytest

from conveyor.deploy.monitoring import exclusive
from tests.conftest import Project
from tests.monitor.test_watch import CONFIG, WINDOW
from tests.monitor.test_watch import Project as Traffic

pytestmark = pytest.mark.timeout(120)
DEPLOY = "deploy:\n  production: {model: clf}\n"


@pytest.fixture
def traffic(project: Project) -> Traffic:
    """The project's log and feedback, written by the monitor tests' helper (model clf), and
    production under deploy: as well as monitor:."""
    made = Traffic(project.root)
    (project.root / "conveyor.yaml").write_text(
        DEPLOY + CONFIG.format(window=WINDOW, hook="http://127.0.0.1:9/hook")
    )
    return made


def test_status_shows_each_check_and_the_alerts(project: Project, traffic: Traffic) -> None:
    out = project.ok("monitor", "status")
    assert "production: no window closed yet" in out
    traffic.serve(WINDOW)
    out = project.ok("monitor", "status", "production")
    for shown in ("rows", "drift.share", "drift.x1", "drift.colour", "prediction_drift", "1:0"):
        assert shown in out
    assert "alert drift: inactive" in out and "alert quality-drop: inactive" in out


def test_run_exits_1_while_an_alert_fires_and_json_says_why(
    project: Project, traffic: Traffic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_SECRET", "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    traffic.serve(WINDOW)
    assert project.run("monitor", "run").code == 0
    traffic.serve(WINDOW, shift=1.5)
    result = project.run("monitor", "run", "--json")
    assert result.code == 1
    shown = json.loads(result.out)
    checks = {c["name"]: c for c in shown["checks"]}
    assert checks["drift.x1"]["verdict"] == "alert" and checks["drift.share"]["value"] >= 0.25
    assert shown["alerts"]["drift"]["status"] == "firing"


def test_status_while_another_monitor_runs_shows_its_last_look(
    project: Project, traffic: Traffic
) -> None:
    traffic.serve(WINDOW)
    project.ok("monitor", "run")
    traffic.serve(WINDOW)  # not read: the monitor holding the lock would read it
    with exclusive(project.root, "production"):
        out = project.ok("monitor", "status")
        assert "by the monitor running in conveyor serve --env production" in out
        result = project.run("monitor", "run")
        assert result.code != 0 and "monitor production" in result.err


def test_watch_looks_n_times_and_tells_what_closed(project: Project, traffic: Traffic) -> None:
    traffic.serve(WINDOW * 2)
    out = project.ok("monitor", "watch", "--interval", "0.1", "--ticks", "2")
    assert "window 1:0 closed: 400 rows" in out and "window 1:1 closed: 400 rows" in out


def test_an_unmonitored_environment_is_named(project: Project, traffic: Traffic) -> None:
    result = project.run("monitor", "status", "productoin")
    assert result.code != 0 and "did you mean 'production'?" in result.err
    assert "Traceback" not in result.err
