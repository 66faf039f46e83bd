"""The pipeline's library entry point: a run with overrides told to a reporter, and the
process entry (`python -m conveyor.pipeline`) a queued experiment runs in its copy."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from conveyor.data.workspace import writing
from conveyor.pipeline import launch
from conveyor.pipeline.planner import Options
from tests.cli.test_runs_cmds import PIPELINE
from tests.conftest import Project


class Events:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def line(self, stage: str, text: str, err: bool) -> None:
        self.seen.append(f"{stage} | {text}")

    def event(self, result: Any) -> None:
        self.seen.append(f"{result.name} {result.status}")


def started(project: Project) -> Project:
    project.write("params.yaml", "train:\n  C: 1.0\n  seed: 7\n")
    project.write("conveyor.yaml", PIPELINE)
    return project


def test_a_run_with_overrides_leaves_the_params_file_alone(project: Project) -> None:
    root = started(project).root
    events = Events()
    with writing("test", root) as ws:
        pipeline = launch.load(ws, ["train.C=0.5"])
        launched = launch.run(ws, pipeline, Options(), events, overrides=["train.C=0.5"])
    assert launched.counts() == {"ran": 1} and launched.failed == 0
    assert events.seen == ["train running", "train ran"]
    assert json.loads((root / "eval.json").read_text()) == {"auc": 0.5}
    assert "C: 1.0" in (root / "params.yaml").read_text()
    run = json.loads(project.ok("runs", "show", launched.run_id, "--json"))
    assert run["params"]["train.C"] == 0.5
    assert launch.publish(root) is None  # an embedded store: fed by its next reader


def test_the_process_entry_runs_and_says_what_failed(project: Project) -> None:
    root = started(project).root
    entry = [sys.executable, "-m", "conveyor.pipeline"]
    done = subprocess.run([*entry, "--name", "x"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "train ran" in done.stdout and "1 stage(s): 1 ran" in done.stdout
    bad = subprocess.run([*entry, "-S", "train.Cc=1"], cwd=root, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout.startswith("error: ")
    assert "did you mean" in bad.stdout
