"""`conveyor runs ...` over runs recorded by real `conveyor run`s."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import Project

PIPELINE = """\
stages:
  train:
    cmd: 'echo "{\\"auc\\": ${train.C}}" > eval.json'
    params: [train.C, train.seed]
    metrics: [eval.json]
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def runs(
    request: pytest.FixtureRequest, project: Project, monkeypatch: pytest.MonkeyPatch
) -> Project:
    if request.param == "postgresql":
        monkeypatch.setenv("CONVEYOR_DB", request.getfixturevalue("pg_db"))
    project.write("params.yaml", "train:\n  C: 1.0\n  seed: 7\n")
    project.write("conveyor.yaml", PIPELINE)
    project.ok("run", "--name", "first")
    project.ok("run", "--name", "second", "-S", "train.C=0.5")
    project.ok("run", "--name", "third", "-S", "train.C=0.25")
    return project


def test_every_run_is_recorded_with_params_and_metrics(runs: Project) -> None:
    rows = json.loads(runs.ok("runs", "list", "--json"))
    assert [r["name"] for r in rows] == ["third", "second", "first"]  # newest first
    assert [r["params"]["train.C"] for r in rows] == [0.25, 0.5, 1.0]
    assert [r["metrics"]["eval.auc"] for r in rows] == [0.25, 0.5, 1.0]
    assert all(r["status"] == "finished" and r["git.branch"] == "main" for r in rows)


def test_table_shows_the_params_that_vary_and_the_metrics(runs: Project) -> None:
    out = runs.ok("runs", "list")
    header = out.splitlines()[0].split()
    assert "train.C" in header and "eval.auc" in header
    assert "train.seed" not in header  # the same in every run: says nothing


def test_sort_filter_limit_and_formats(runs: Project) -> None:
    rows = json.loads(
        runs.ok(
            "runs", "list", "--json", "--sort", "metrics.eval.auc", "--filter", "params.train.C < 1"
        )
    )
    assert [r["name"] for r in rows] == ["third", "second"]
    assert len(json.loads(runs.ok("runs", "list", "--json", "--limit", "1"))) == 1
    table = list(csv.reader(io.StringIO(runs.ok("runs", "list", "--csv"))))
    assert table[0][:3] == ["id", "name", "status"] and len(table) == 4
    md = runs.ok("runs", "list", "--md").splitlines()
    assert md[0].startswith("| id | name |") and md[1].startswith("|---|")


def test_a_bad_filter_is_a_clear_error(runs: Project) -> None:
    result = runs.run("runs", "list", "--filter", "metric.eval.auc > 0.5")
    assert result.code == 2 and "metrics.eval.auc" in result.err
    assert "Traceback" not in result.err


def test_show_and_compare(runs: Project) -> None:
    rows = json.loads(runs.ok("runs", "list", "--json", "--sort", "started"))
    first, second = rows[0]["id"], rows[1]["id"]
    shown = runs.ok("runs", "show", first[:-2])  # a unique prefix is enough
    assert "first" in shown and "train.C" in shown and "stages" in shown
    compared = json.loads(runs.ok("runs", "compare", first, second, "--json"))
    auc = next(r for r in compared if r["name"] == "metrics.eval.auc")
    assert auc["values"] == [1.0, 0.5]
    assert auc["delta"] == -0.5 and auc["relative"] == -0.5
    assert "-50.00 %" in runs.ok("runs", "compare", first, second)


def test_unknown_and_ambiguous_runs(runs: Project) -> None:
    assert runs.run("runs", "show", "nope").code == 2
    result = runs.run("runs", "show", "2")  # every id starts with the year
    assert result.code == 2 and "more than one run" in result.err


def test_delete_hides_a_run(runs: Project) -> None:
    rows = json.loads(runs.ok("runs", "list", "--json"))
    runs.ok("runs", "delete", rows[0]["id"])
    names = [r["name"] for r in json.loads(runs.ok("runs", "list", "--json"))]
    assert names == ["second", "first"]
    assert len(json.loads(runs.ok("runs", "list", "--json", "--deleted"))) == 3


def test_a_descending_sort_key_may_follow_the_option(runs: Project) -> None:
    spaced = json.loads(runs.ok("runs", "list", "--json", "--sort", "-metrics.eval.auc"))
    joined = json.loads(runs.ok("runs", "list", "--json", "--sort=-metrics.eval.auc"))
    worded = json.loads(runs.ok("runs", "list", "--json", "--sort", "metrics.eval.auc desc"))
    assert [r["name"] for r in spaced] == ["first", "second", "third"]
    assert spaced == joined == worded


def test_with_a_server_store_a_run_is_published_at_once(
    project: Project, monkeypatch: pytest.MonkeyPatch, pg_db: str
) -> None:
    from conveyor.tracking import spool

    monkeypatch.setenv("CONVEYOR_DB", pg_db)
    project.write("params.yaml", "train:\n  C: 1.0\n  seed: 7\n")
    project.write("conveyor.yaml", PIPELINE)
    project.ok("run", "--name", "shared")
    assert spool.pending(project.root) == []  # already in PostgreSQL, no reader needed
    monkeypatch.setenv("CONVEYOR_DB", "postgresql://nobody@127.0.0.1:1/none")
    result = project.run("run", "--force", "--name", "offline")
    assert result.code == 0 and "waits in .conveyor/spool" in result.err
    assert len(spool.pending(project.root)) == 2
