"""Experiments: queued runs in isolated workspace copies, run now, and applied back."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_runs_cmds import PIPELINE
from tests.conftest import Project

PARAMS = "# tuned by hand\ntrain:\n  C: 1.0\n  seed: 7\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def exp(
    request: pytest.FixtureRequest, project: Project, monkeypatch: pytest.MonkeyPatch
) -> Project:
    if request.param == "postgresql":
        monkeypatch.setenv("CONVEYOR_DB", request.getfixturevalue("pg_db"))
    project.write("params.yaml", PARAMS)
    project.write("data.txt", "rows\n")
    project.ok("add", "data.txt")
    project.write(
        "conveyor.yaml",
        PIPELINE.replace(
            "    metrics: [eval.json]", "    metrics: [eval.json]\n    deps: [data.txt]"
        ),
    )
    project.ok("run", "--name", "base")
    project.git("add", "-A")
    project.git("commit", "-qm", "base")
    return project


def runs_by_name(project: Project) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in json.loads(project.ok("runs", "list", "--json"))}


def test_queued_experiments_run_in_copies_and_leave_the_workspace_alone(exp: Project) -> None:
    exp.ok("exp", "run", "--queue", "-S", "train.C=0.5", "--name", "half")
    exp.ok("exp", "run", "--queue", "-S", "train.C=2", "--name", "double")
    assert "half" in exp.ok("exp", "queue") and "double" in exp.ok("exp", "queue")
    out = exp.ok("exp", "start", "-j", "2")
    assert out.count("finished") == 2
    assert exp.git("status", "--porcelain") == ""  # params, lock, outs: untouched
    runs = runs_by_name(exp)
    assert runs["half"]["metrics"] == {"eval.auc": 0.5} and runs["half"]["kind"] == "experiment"
    assert runs["double"]["params"]["train.C"] == 2
    assert "empty" in exp.ok("exp", "queue")
    assert not list((exp.root / ".conveyor" / "exps").iterdir())


def test_apply_brings_a_runs_params_and_outs_back(exp: Project) -> None:
    exp.ok("exp", "run", "--queue", "-S", "train.C=0.25", "--name", "quarter")
    exp.ok("exp", "start")
    quarter = runs_by_name(exp)["quarter"]["id"]
    out = exp.ok("exp", "apply", str(quarter))
    assert "train.C: 1.0 -> 0.25" in out and "restored from run-cache" in out
    assert "C: 0.25" in (exp.root / "params.yaml").read_text()
    assert json.loads((exp.root / "eval.json").read_text()) == {"auc": 0.25}
    assert "No stale stages" in exp.ok("status")


def test_exp_run_now_keeps_params_yaml(exp: Project) -> None:
    exp.ok("exp", "run", "-S", "train.C=0.75", "--name", "now")
    assert (exp.root / "params.yaml").read_text() == PARAMS
    assert runs_by_name(exp)["now"]["kind"] == "experiment"
    assert json.loads((exp.root / "eval.json").read_text()) == {"auc": 0.75}


def test_a_failing_experiment_is_reported_and_recorded(exp: Project) -> None:
    exp.ok("exp", "run", "--queue", "-S", "train.nope=1")
    result = exp.run("exp", "start")
    assert result.code == 1 and "failed" in result.out
    assert "did you mean" in result.out
