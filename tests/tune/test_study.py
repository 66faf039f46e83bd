"""`conveyor tune` end to end: real Optuna, real trial runs, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Project

PIPELINE = """\
stages:
  score:
    cmd: 'echo "{\\"score\\": ${train.x}}" > score.json'
    params: [train.x, train.kind]
    metrics: [score.json]
tune:
  objective: {metric: score.score, direction: minimize}
  space:
    train.x: {type: int, low: 1, high: 9}
    train.kind: {type: categorical, choices: ["yes", b]}
  trials: 4
  jobs: 2
  sampler: random
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def tuned(request: pytest.FixtureRequest, project: Project) -> Project:
    if request.param == "postgresql":
        os.environ["CONVEYOR_DB"] = request.getfixturevalue("pg_db")
        request.addfinalizer(lambda: os.environ.pop("CONVEYOR_DB", None))
    project.write("params.yaml", "# searched\ntrain:\n  x: 5\n  kind: b\n")
    project.write("conveyor.yaml", PIPELINE)
    project.ok("run")
    project.git("add", "-A")
    project.git("commit", "-qm", "base")
    return project


def test_a_search_runs_trials_as_runs_resumes_and_applies(tuned: Project) -> None:
    out = tuned.ok("tune")
    assert out.count("✓ trial") == 4 and "4 of 4 trial(s) complete" in out
    assert tuned.git("status", "--porcelain") == ""  # trials ran in copies
    runs = json.loads(tuned.ok("runs", "list", "--json", "--filter", "tags.study = proj"))
    assert len(runs) == 4 and {r["kind"] for r in runs} == {"trial"}
    for r in runs:  # the objective is what the trial's own params produced
        assert r["metrics"]["score.score"] == r["params"]["train.x"]
        assert r["params"]["train.kind"] in ("yes", "b")  # a string stays a string

    again = tuned.run("tune")
    assert again.code == 2 and "--resume" in again.err
    assert tuned.ok("tune", "--resume", "--trials", "2").count("✓ trial") == 2

    shown = tuned.ok("tune", "show", "--apply")
    trials = [r for r in json.loads(tuned.ok("runs", "list", "--json")) if r["kind"] == "trial"]
    best = min(r["params"]["train.x"] for r in trials)  # the base run (x = 5) is no trial
    assert f"score.score = {best}" in shown
    assert (tuned.root / "reports" / "tune-proj" / "history.png").stat().st_size > 1000
    assert "data:image/png;base64," in (tuned.root / "reports/tune-proj/history.html").read_text()
    assert f"x: {best}" in (tuned.root / "params.yaml").read_text()


def test_a_trial_whose_metric_is_missing_fails_visibly(tuned: Project) -> None:
    tuned.write("conveyor.yaml", PIPELINE.replace("score.score", "score.nope"))
    result = tuned.run("tune", "--trials", "1")
    assert result.code == 1
    assert "metric score.nope not in the metrics files (they hold: score.score)" in result.out


STEPPED = """\
import json, sys, yaml, conveyor
x = yaml.safe_load(open("params.yaml"))["train"]["x"]
for step in range(3):
    conveyor.log_metric("loss", float(x), step=step)
json.dump({"loss": float(x)}, open("score.json", "w"))
"""


def test_the_median_pruner_stops_trials_from_their_stepped_metric(project: Project) -> None:
    import sys

    project.write("train.py", STEPPED)
    project.write("params.yaml", "train:\n  x: 5\n")
    project.write(
        "conveyor.yaml",
        f"stages:\n  score:\n    cmd: {sys.executable} train.py\n    params: [train.x]\n"
        "    metrics: [score.json]\n"
        "tune:\n  objective: {metric: score.loss, direction: minimize, intermediate: loss}\n"
        "  space:\n    train.x: {type: int, low: 1, high: 9}\n"
        "  sampler: grid\n  pruner: median\n  seed: 3\n  trials: 9\n",
    )
    project.ok("run")
    project.git("add", "-A")
    project.git("commit", "-qm", "base")
    out = project.ok("tune")
    pruned = [line for line in out.splitlines() if " pruned " in line]
    assert pruned, out
    # Each pruned trial reported a loss worse than the median of the trials complete before it.
    complete: list[int] = []
    for line in out.splitlines():
        if "train.x=" not in line:
            continue
        x = int(line.split("train.x=")[1].split(")")[0])
        if " pruned " in line:
            ordered = sorted(complete)
            assert len(ordered) >= 2 and x > ordered[(len(ordered) - 1) // 2], out
        else:
            complete.append(x)
    shown = project.ok("tune", "show")
    assert "pruned" in shown


def test_tune_values_reach_trials_as_json(tmp_path: Path) -> None:
    from conveyor.pipeline.params import parse_scalar
    from conveyor.tune.study import override

    for value in (None, True, 0.1, 5, "yes", "b"):
        _, _, text = override("k", value).partition("=")
        assert parse_scalar(text) == value
