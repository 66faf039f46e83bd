"""Baselines resolved from a name: a git revision (its metrics, and predictions from the cache
by its lock), a run, an alias; and what is said when one is missing or unusable."""

from __future__ import annotations

import json

import pytest

from conveyor.gates.evaluate import NoBaseline
from conveyor.registry import baseline
from conveyor.registry.baseline import BaselineError
from tests.ci.flows import small
from tests.conftest import Project


@pytest.fixture
def moved(project: Project) -> Project:
    """Committed at q 0.5, then run again at q 0.9 (not committed)."""
    small(project, q=0.5)
    project.write("params.yaml", "q: 0.9\n")
    project.ok("run")
    return project


def test_a_git_revision_reads_its_metrics_and_predictions_from_the_cache(moved: Project) -> None:
    found = baseline.resolve(moved.root, "rev:HEAD", model=None)
    assert found.label.startswith("HEAD (") and found.metrics == {"eval.accuracy": 0.5}
    table = found.predictions("preds.csv")
    assert len(table) == 40 and (table["label"] == table["prediction"]).sum() == 20
    assert baseline.resolve(moved.root, "HEAD", model=None).metrics == found.metrics


def test_a_run_by_id_and_the_latest_run(moved: Project) -> None:
    ids = [r["id"] for r in json.loads(moved.ok("runs", "list", "--json"))]  # newest first
    assert baseline.latest_run(moved.root) == ids[0]
    found = baseline.resolve(moved.root, f"run:{ids[1]}", model=None)
    assert found.label == f"run {ids[1]}" and found.metrics == {"eval.accuracy": 0.5}
    with pytest.raises(BaselineError, match=f"run {ids[1]} recorded no other.csv") as err:
        found.predictions("other.csv")
    assert err.value.hint is not None and "outs:" in err.value.hint


def test_nothing_by_that_name_is_no_baseline_yet(moved: Project) -> None:
    with pytest.raises(NoBaseline, match="no 'production'"):
        baseline.resolve(moved.root, "production", model=None)
    with pytest.raises(NoBaseline, match="clf has no alias 'production' yet"):
        baseline.resolve(moved.root, "alias:production", model="clf")
    assert baseline.alias_version(moved.root, "clf", "production") is None
    assert baseline.model_name(moved.root, None) is None  # conveyor.yaml declares no model
    assert baseline.model_folder(moved.root, None) is None


def test_lock_at_a_commit_without_a_lock_is_empty(project: Project) -> None:
    project.write("a.txt", "a\n")
    project.git("add", "-A")
    project.git("commit", "-qm", "no lock yet")
    head = project.git("rev-parse", "HEAD").strip()
    assert baseline.lock_at(project.root, head, "HEAD") == ({}, {})
