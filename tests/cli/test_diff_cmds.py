"""`conveyor diff` between git revisions, the workspace and runs."""

from __future__ import annotations

import json

from tests.cli.test_runs_cmds import PIPELINE
from tests.conftest import Project


def test_diff_of_revisions_the_workspace_and_runs(project: Project) -> None:
    project.write("params.yaml", "train:\n  C: 1.0\n  seed: 7\n")
    project.write("conveyor.yaml", PIPELINE)
    project.ok("run")
    project.git("add", "-A")
    project.git("commit", "-qm", "C=1")
    assert "No param or metric differs" in project.ok("diff")

    project.write("params.yaml", "train:\n  C: 0.5\n  seed: 7\n")
    project.ok("run")
    report = json.loads(project.ok("diff", "--json"))
    assert report["old"] == "HEAD" and report["new"] == "workspace"
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"params.train.C", "metrics.eval.auc"}  # seed is unchanged
    assert rows["metrics.eval.auc"]["values"] == [1.0, 0.5]
    assert rows["metrics.eval.auc"]["relative"] == -0.5
    project.git("commit", "-qam", "C=0.5")
    between = json.loads(project.ok("diff", "HEAD~1", "HEAD", "--json"))
    assert {r["name"] for r in between["rows"]} == {"params.train.C", "metrics.eval.auc"}
    assert len(json.loads(project.ok("diff", "HEAD~1", "HEAD", "--all", "--json"))["rows"]) == 3

    ids = [r["id"] for r in json.loads(project.ok("runs", "list", "--json", "--sort", "started"))]
    md = project.ok("diff", ids[0], ids[1], "--md").splitlines()
    assert md[0] == f"|  | {ids[0]} | {ids[1]} | change | relative |"
    assert "| metrics.eval.auc | 1 | 0.5 | -0.5 | -50.00 % |" in md

    result = project.run("diff", "no-such-thing")
    assert result.code == 2 and "neither a git revision nor a run" in result.err
