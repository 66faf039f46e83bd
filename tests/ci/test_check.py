"""The check flow as a library function: results returned, reports written, the verdict stored
with the run, and nothing printed."""

from __future__ import annotations

import json

import pytest

from conveyor.ci.check import check, evaluate
from conveyor.gates import config
from conveyor.tracking.db import opened
from tests.ci.flows import small
from tests.conftest import Project


def test_check_returns_the_verdict_writes_reports_and_tags_the_run(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = small(project).root
    capsys.readouterr()
    checked = check(root, config.load(root), run=None, reports=root / "out")
    assert capsys.readouterr().out == ""
    assert checked.verdict == "pass" and [r.verdict for r in checked.results] == ["pass"]
    assert checked.meta["candidate"] == "the workspace" and checked.run is not None
    assert json.loads((root / "out" / "gates.json").read_text())["verdict"] == "pass"
    with opened(root, write=False) as store:
        assert store.run(checked.run)["tags"]["gates.verdict"] == "pass"


def test_a_run_is_checked_on_its_own_metrics(project: Project) -> None:
    root = small(project, q=0.5).root
    first = json.loads(project.ok("runs", "list", "--json"))[0]["id"]
    project.write("params.yaml", "q: 0.9\n")
    project.ok("run")
    gates = config.load(root)
    assert evaluate(root, gates, None).verdict == "pass"  # the workspace: 0.9
    old = evaluate(root, gates, first)
    assert old.verdict == "fail" and old.meta["candidate"] == f"run {first}"
    assert old.results[0].value == 0.5
