"""conveyor retrain ENV: each step printed as it happens, the outcome in one line, and the exit
code a script can act on (0: a rollout started or nothing changed, 1: the gates failed, else the
error's code)."""

from __future__ import annotations

import pytest

from conveyor.ci.retrainer import exclusive
from tests.ci.retraining import deployed, rows
from tests.conftest import Project


@pytest.fixture
def proj(project: Project) -> Project:
    return deployed(project)


def test_a_retrain_prints_its_steps_and_starts_the_rollout(proj: Project) -> None:
    proj.write("data/rows.csv", rows(30))
    result = proj.run("retrain", "production", "--reason", "drift on x")
    assert result.code == 0, result.err
    out = result.out
    assert "conveyor retrain: clf, drift on x" in out
    for line in (
        "== run",
        "1 stage(s): 1 ran",
        "run: 1 ran (",
        "check: passed (",
        "register: registered clf version 2 from run",
        "deploy: progressing, 20 % candidate (",
    ):
        assert line in out, out
    assert out.index("== run") < out.index("== check") < out.index("== register")
    assert "production: retrained; rolling out models:/clf/2 over version 1" in out
    assert "conveyor rollout watch production" in out

    history = proj.ok("rollout", "history", "production")
    for kind in (
        "retrain.started",
        "retrain.step",
        "retrain.registered",
        "retrain.rollout_started",
    ):
        assert kind in history, history
    assert "reason=drift on x" in history

    again = proj.run("retrain", "production")
    assert again.code == 0 and "nothing to roll out (clf unchanged: version 2" in again.out


def test_exit_codes_of_failing_gates_a_mistake_and_a_retrain_in_flight(proj: Project) -> None:
    proj.write("data/rows.csv", rows(20, flipped=True))
    result = proj.run("retrain", "production")
    assert result.code == 1 and "retrain stopped, the gates failed" in result.out
    assert "== register" not in result.out

    result = proj.run("retrain", "productoin")
    assert result.code == 2 and "Traceback" not in result.err
    assert "no environment 'productoin'" in result.err and "production" in result.err
    assert "retrain failed at step start" in result.out

    with exclusive(proj.root, "production"):
        result = proj.run("retrain", "production")
    assert result.code == 3 and "a retrain is in flight in this project" in result.err
