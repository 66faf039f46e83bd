"""The Python logging API against a real project: spool files, the store, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import conveyor
from conveyor.foundation.errors import ConveyorError
from conveyor.tracking import api, spool
from conveyor.tracking.db import opened
from tests.conftest import Project


def test_a_run_records_params_metrics_tags_and_its_end(in_project: Project) -> None:
    with conveyor.start_run(name="baseline") as run:
        conveyor.log_params({"lr": 0.1, "layers": [32, 16]})
        for step in range(5):
            conveyor.log_metric("loss", 1.0 / (step + 1), step=step)
        conveyor.log_metrics({"acc": 0.9, "f1": 0.8})
        conveyor.set_tags({"team": "vision"})
    with opened(in_project.root) as store:
        got = store.run(run.id)
        assert store.history(run.id, "loss")[-1][:2] == (4, 0.2)
    assert got["name"] == "baseline" and got["status"] == "finished"
    assert got["params"] == {"lr": 0.1, "layers": [32, 16]}
    assert got["metrics"] == {"loss": 0.2, "acc": 0.9, "f1": 0.8}
    assert got["tags"] == {"team": "vision"}
    assert got["git.branch"] == "main"
    assert spool.pending(in_project.root) == []  # drained into the store


def test_an_exception_marks_the_run_failed_and_keeps_what_was_logged(in_project: Project) -> None:
    with pytest.raises(ZeroDivisionError), conveyor.start_run() as run:
        conveyor.log_metric("loss", 3.0)
        _ = 1 / 0
    with opened(in_project.root) as store:
        got = store.run(run.id)
    assert got["status"] == "failed" and got["metrics"] == {"loss": 3.0}


def test_logging_buffers_until_a_flush(in_project: Project) -> None:
    with conveyor.start_run() as run:
        before = len(spool.pending(in_project.root))
        for i in range(100):
            conveyor.log_metric("x", i, step=i)
        assert len(spool.pending(in_project.root)) == before  # no file per call
    with opened(in_project.root) as store:
        assert len(store.history(run.id, "x")) == 100


def test_a_process_that_dies_of_an_exception_still_flushes_at_exit(in_project: Project) -> None:
    code = (
        "import conveyor\n"
        "for i in range(10):\n"
        "    conveyor.log_metric('loss', 10 - i, step=i)\n"
        "raise SystemExit('boom')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=in_project.root, env=env, capture_output=True
    )
    assert proc.returncode == 1
    with opened(in_project.root) as store:
        runs = store.runs()
        assert len(runs) == 1 and runs[0]["metrics"] == {"loss": 1.0}
        assert len(store.history(runs[0]["id"], "loss")) == 10


def test_inside_a_stage_calls_attach_to_the_pipeline_run(in_project: Project) -> None:
    script = in_project.write(
        "train.py",
        "import conveyor\n"
        "for step in range(3):\n"
        "    conveyor.log_metric('loss', 1.0 / (step + 1), step=step)\n"
        "conveyor.log_params({'seen': True})\n"
        "open('model.txt', 'w').write('m')\n",
    )
    in_project.write(
        "conveyor.yaml",
        f"stages:\n  train:\n    cmd: {sys.executable} {script.name}\n    outs: [model.txt]\n",
    )
    in_project.ok("run", "--name", "attached")
    with opened(in_project.root) as store:
        runs = store.runs()
        assert [r["name"] for r in runs] == ["attached"]  # no second run from the stage
        run = store.run(runs[0]["id"])
    assert run["metrics"]["loss"] == pytest.approx(1 / 3)
    assert run["params"]["seen"] is True
    assert run["stages"] == [
        {
            "stage": "train",
            "status": "ran",
            "duration": run["stages"][0]["duration"],
            "exit_code": 0,
        }
    ]
    assert run["outs"]["model.txt"]


def test_log_artifact_stores_the_file_in_the_cache(in_project: Project) -> None:
    in_project.write("report.txt", "hello")
    with conveyor.start_run() as run:
        ref = conveyor.log_artifact("report.txt")
    objects = in_project.root / ".conveyor" / "cache" / "objects"
    assert (objects / ref[:2] / ref[2:]).read_text() == "hello"
    with opened(in_project.root) as store:
        assert store.run(run.id)["artifacts"] == {"report.txt": {"hash": ref, "size": 5}}


def test_public_names(in_project: Path) -> None:
    for name in (
        "log_metric",
        "log_metrics",
        "log_params",
        "set_tags",
        "log_artifact",
        "start_run",
    ):
        assert name in conveyor.__all__ and callable(getattr(conveyor, name))


def test_gc_keeps_the_artifacts_of_runs_until_they_are_deleted(in_project: Project) -> None:
    in_project.write("report.txt", "keep me")
    with conveyor.start_run() as run:
        ref = conveyor.log_artifact("report.txt")
    (in_project.root / "report.txt").unlink()
    obj = in_project.root / ".conveyor" / "cache" / "objects" / ref[:2] / ref[2:]
    in_project.ok("gc")
    assert obj.exists()
    in_project.ok("runs", "delete", run.id)
    in_project.ok("gc")
    assert not obj.exists()


def test_git_state_records_commit_branch_and_a_hash_of_the_uncommitted_diff(
    project: Project,
) -> None:
    from conveyor.tracking.api import _git_state, git_state

    project.write("data.csv", "a,b\n")
    project.git("add", "data.csv")
    project.git("commit", "-q", "-m", "data")
    head = project.git("rev-parse", "HEAD").strip()
    assert git_state(project.root) == {"git_commit": head, "git_branch": "main", "git_dirty": False}
    project.write("data.csv", "a,b\n1,2\n")
    dirty = _git_state(project.root)
    assert dirty["git_dirty"] is True and len(dirty["diff_hash"]) == 16
    project.write("data.csv", "a,b\n3,4\n")
    assert _git_state(project.root)["diff_hash"] != dirty["diff_hash"]
    assert _git_state(project.root.parent) == {}  # outside git: no commit to record


def test_an_artifact_survives_gc_while_its_run_is_open(in_project: Project) -> None:
    in_project.write("model.bin", b"x" * 1000)
    with conveyor.start_run():
        ref = conveyor.log_artifact("model.bin")
        in_project.ok("gc")
        obj = in_project.root / ".conveyor" / "cache" / "objects" / ref[:2] / ref[2:]
        assert obj.exists()


def test_numpy_steps_are_numbers(in_project: Project) -> None:
    with conveyor.start_run() as run:
        for step in np.arange(12):
            conveyor.log_metric("loss", 1.0 / (int(step) + 1), step=step)
        with pytest.raises(ConveyorError, match="step must be a whole number"):
            conveyor.log_metric("loss", 1.0, step=1.5)  # type: ignore[arg-type]
    with opened(in_project.root) as store:
        assert store.run(run.id)["metrics"]["loss"] == pytest.approx(1 / 12)


def test_start_run_after_a_bare_log_call(in_project: Project) -> None:
    conveyor.log_params({"a": 1})
    implicit = api._current
    with conveyor.start_run(name="explicit") as run:
        conveyor.log_metric("m", 2.0)
    assert implicit is not None and implicit.id != run.id
    with opened(in_project.root) as store:
        assert store.run(implicit.id)["status"] == "finished"
        assert store.run(run.id)["metrics"] == {"m": 2.0}


def test_a_run_started_inside_another_is_a_tracking_error(in_project: Project) -> None:
    from conveyor.foundation.errors import TrackingError

    with conveyor.start_run() as run:
        with pytest.raises(TrackingError, match=f"run {run.id} is still active"):
            conveyor.start_run().__enter__()
        with pytest.raises(TrackingError, match="step must be a whole number"):
            conveyor.log_metric("loss", 1.0, step="one")  # type: ignore[arg-type]
