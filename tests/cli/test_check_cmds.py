"""`conveyor check` end to end in a real project: a pipeline writes metrics, predictions and a
model package; baselines come from the registry, a git revision and a run; the project's own
tests run as a gate; behaviour and budgets run against the real package; reports are written
and the verdict is stored with the run."""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.conftest import Project

EVALUATE = """\
import csv, json, os, sys
import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from conveyor import models

skill = float(yaml.safe_load(open("params.yaml"))["skill"])
rng = np.random.default_rng(0)
x = rng.normal(size=(400, 2))
y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(int)
noisy = x[:, 0] * skill + rng.normal(scale=1.0, size=400)
model = LogisticRegression().fit(x, y)
models.save(model, "model", example=x[:3], name="clf") if not os.path.exists("model") else None
score = 1 / (1 + np.exp(-3 * noisy))
pred = (score >= 0.5).astype(int)
os.makedirs("metrics", exist_ok=True)
json.dump({"accuracy": float((pred == y).mean()), "n": 400}, open("metrics/eval.json", "w"))
with open("predictions.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "label", "score", "prediction", "half"])
    for i in range(400):
        w.writerow([i, y[i], round(float(score[i]), 6), pred[i], "a" if i % 2 else "b"])
with open("rows.csv", "w") as f:
    f.write("f0,f1\\n" + "\\n".join(f"{a},{b}" for a, b in x[:50]))
"""

PIPELINE = f"""\
stages:
  evaluate:
    cmd: {sys.executable} evaluate.py
    deps: [evaluate.py]
    params: [skill]
    metrics: [metrics/eval.json]
    outs: [predictions.csv, model, rows.csv]
models:
  clf:
    path: model
gates:
  predictions: predictions.csv
  checks:
    - metric: eval.accuracy
      min: 0.6
    - name: vs production
      metric: eval.accuracy
      vs: production
      min_change: 0
      confidence: 0.95
    - metric: eval.accuracy
      slice_by: half
      min: 0.6
    - invariance: {{data: rows.csv, drop: [], column: f1, delta: 0.01, tolerance: 0.05}}
    - directional: {{data: rows.csv, drop: [], column: f0, delta: 1.0, expect: increase}}
    - examples: examples.json
    - budget: {{size_mb: 1, p50_ms: 50, batch: 20, batch_p99_ms: 500}}
    - tests: pytest -q -p no:cacheprovider checks
"""

TESTS = "def test_ok():\n    assert 1 + 1 == 2\n\ndef test_also_ok():\n    assert True\n"


@pytest.fixture
def checked(project: Project) -> Project:
    project.write("evaluate.py", EVALUATE)
    project.write("params.yaml", "skill: 1.0\n")
    project.write("conveyor.yaml", PIPELINE)
    project.write("checks/test_it.py", TESTS)
    project.write("examples.json", json.dumps([{"input": [3.0, 0.0], "expected": 1},
                                               {"input": [-3.0, 0.0], "expected": 0}]))  # fmt: skip
    project.ok("run")
    project.git("add", "-A")
    project.git("commit", "-qm", "base")
    return project


def gates_json(project: Project) -> dict[str, dict[str, object]]:
    doc = json.loads((project.root / "reports" / "gates.json").read_text())
    return {g["name"]: g for g in doc["gates"]}


def test_first_model_passes_with_the_change_check_skipped(checked: Project) -> None:
    result = checked.run("check")
    assert result.code == 0, result.out + result.err
    gates = gates_json(checked)
    assert gates["vs production"]["verdict"] == "skipped"
    assert "no baseline yet" in result.out
    for name in ("invariance f1", "directional f0", "examples examples.json", "budget", "tests"):
        assert gates[name]["verdict"] == "pass", (name, gates[name])
    assert gates["tests"]["n"] == 2
    for name in ("gates.md", "gates.junit.xml"):
        assert (checked.root / "reports" / name).stat().st_size > 100


def test_a_worse_candidate_fails_against_production_and_the_verdict_is_stored(
    checked: Project,
) -> None:
    run = json.loads(checked.ok("runs", "list", "--json"))[0]["id"]
    checked.ok("models", "register", "clf", "model", "--run", run)
    checked.ok("models", "alias", "clf@production", "1")
    assert checked.run("check").code == 0  # the same predictions: a difference of exactly 0
    checked.write("params.yaml", "skill: 0.3\n")
    checked.ok("run")
    result = checked.run("check")
    assert result.code == 1 and "FAILED" in result.out
    gate = gates_json(checked)["vs production"]
    assert gate["verdict"] == "fail" and gate["n"] == 400
    assert gate["interval"][1] < 0  # type: ignore[index]
    latest = json.loads(checked.ok("runs", "list", "--json"))[0]["id"]
    shown = json.loads(checked.ok("runs", "show", latest, "--json"))
    assert shown["tags"]["gates.verdict"] == "fail"
    assert "vs production" in shown["tags"]["gates.failed"]
    # The same comparison against the git revision and against the first run
    for vs in ("rev:HEAD", f"run:{run}"):
        checked.write("conveyor.yaml", PIPELINE.replace("vs: production", f"vs: {vs}"))
        assert checked.run("check").code == 1
        assert gates_json(checked)["vs production"]["baseline"] == gate["baseline"]
    # The first run, checked by id: its own predictions equal production's
    checked.write("conveyor.yaml", PIPELINE)
    assert checked.run("check", "--run", run).code == 0


def test_failing_project_tests_and_a_bad_config(checked: Project) -> None:
    checked.write("checks/test_it.py", TESTS + "\ndef test_broken():\n    assert False\n")
    assert checked.run("check").code == 1
    assert "1 failed" in gates_json(checked)["tests"]["detail"]  # type: ignore[operator]
    checked.write("conveyor.yaml", PIPELINE.replace("min: 0.6", "min: lots", 1))
    bad = checked.run("check")
    assert bad.code == 2 and "conveyor.yaml:" in bad.err and "min: a number" in bad.err


def test_every_mistake_in_conveyor_yaml_is_reported_together(checked: Project) -> None:
    """One `conveyor check` names a bad stage, a bad gate, a bad tune space, a bad model and an
    unknown section, each with its line, before any gate runs."""
    text = (
        PIPELINE.replace("    deps: [evaluate.py]", "    depz: [evaluate.py]")
        .replace("min: 0.6", "min: lots", 1)
        .replace("    path: model", "    path: model\n    pth: other")
        + "tune:\n  objective: {metric: eval.accuracy}\n"
        + "  space:\n    skill: {type: float, low: 1, high: 0}\n"
        + "deploi: {}\n"
    )
    checked.write("conveyor.yaml", text)
    lines = text.splitlines()

    def line(fragment: str) -> int:
        return next(i for i, t in enumerate(lines, 1) if fragment in t)

    bad = checked.run("check")
    assert bad.code == 2, bad.out + bad.err
    for fragment, hint in (
        ("depz:", "'deps'"),
        ("min: lots", "a number"),
        ("pth: other", "'path'"),
        ("skill: {type: float", "low must be below high"),
        ("deploi:", "deploy"),
    ):
        assert f"conveyor.yaml:{line(fragment)}:" in bad.err, (fragment, bad.err)
        assert hint in bad.err, (hint, bad.err)
    assert not (checked.root / "reports" / "gates.json").exists()


def test_report_and_the_ci_job(checked: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    run = json.loads(checked.ok("runs", "list", "--json"))[0]["id"]
    checked.ok("models", "register", "clf", "model", "--run", run)
    checked.ok("models", "alias", "clf@production", "1")
    checked.write("params.yaml", "skill: 0.3\n")
    for key in ("GITHUB_EVENT_PATH", "GITLAB_CI", "JENKINS_URL", "TF_BUILD"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_REF", "refs/pull/3/merge")
    monkeypatch.setenv("GITHUB_HEAD_REF", "worse")
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    result = checked.run("ci")
    assert result.code == 1, result.out + result.err
    assert "GitHub Actions, pull request #3 into main" in result.out
    assert "::error::gate vs production: fail" in result.out  # an annotation on the PR
    assert re.search(r"^check +FAILED", result.out, re.M)
    report = (checked.root / "reports" / "report.md").read_text()
    assert report.startswith("<!-- conveyor-report -->")
    assert "conveyor report: workspace vs main" in report  # the PR's target branch
    assert "| metrics.eval.accuracy |" in report and "| params.skill | 1 | 0.3 |" in report, report
    assert "![confusion matrix](report-plots/confusion.png)" in report
    page = (checked.root / "reports" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 1 and "<table>" in page
    against = checked.run("report", "--base", "production")
    assert against.code == 0
    assert "vs production (v1)" in (checked.root / "reports" / "report.md").read_text()
    for key in ("GITHUB_ACTIONS", "GITHUB_EVENT_NAME", "GITHUB_REF", "GITHUB_BASE_REF"):
        monkeypatch.delenv(key)
    checked.write("params.yaml", "skill: 1.0\n")
    released = checked.run("ci", "--release")
    assert released.code == 0, released.out + released.err
    assert "clf@staging -> version 1" in released.out
    assert json.loads(checked.ok("models", "show", "clf@staging", "--json"))["version"] == 1
