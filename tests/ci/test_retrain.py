"""The retrain flow on a real project, its pipeline and its SQLite store: new data is run, gated,
registered and rolled out; failing gates and an unchanged package stop it; every step is an
event of the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.ci.retrain import retrain
from conveyor.deploy import flows
from conveyor.deploy.errors import UnknownEnvironment
from conveyor.foundation.errors import PipelineError
from conveyor.registry import queries
from conveyor.tracking.db import opened
from tests.ci.retraining import PIPELINE, TRAIN, deployed, retrains, rows
from tests.conftest import Project
from tests.deploy.projects import environment


@pytest.fixture
def proj(project: Project) -> Project:
    return deployed(project)


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


def test_the_first_retrain_registers_version_1_and_serves_it_at_once(project: Project) -> None:
    project.write("train.py", TRAIN)
    project.write("data/rows.csv", rows(20))
    project.write("conveyor.yaml", PIPELINE + environment())
    done = retrain(project.root, "production", reason="first")
    assert done.outcome == "rollout_started" and done.version == "models:/clf/1"
    assert done.rollout is not None and (done.rollout.stable, done.rollout.candidate) == (1, None)
    assert done.message == "production: retrained; models:/clf/1 now serves all traffic"
    assert production(project.root) == 1


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
