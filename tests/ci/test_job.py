"""The CI job as a library function: steps in order, told to a watcher, nothing printed; the
exit code is the gates' verdict, or the code of the step that could not be done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.ci.job import JobOptions, run_job
from conveyor.foundation.errors import ConfigError, ConveyorError
from tests.ci.flows import small
from tests.conftest import Project


class Heard:
    """A watcher that keeps what it hears."""

    def __init__(self) -> None:
        self.said: list[str] = []
        self.errors: list[ConveyorError] = []
        self.lines: list[str] = []

    def step(self, name: str) -> None:
        self.said.append(f"step {name}")

    def progress(self) -> None:
        return None

    def pulled(self, pulled: Any) -> None:
        self.said.append("pulled")

    def reporter(self, pipeline: Any) -> Heard:
        return self

    def line(self, stage: str, text: str, err: bool) -> None:
        self.lines.append(f"{stage}: {text}")

    def event(self, result: Any) -> None:
        self.said.append(f"{result.name} {result.status}")

    def ran(self, launched: Any, published: ConveyorError | None) -> None:
        self.said.append(f"ran {launched.counts() if launched else None}")

    def checked(self, checked: Any, folder: Path) -> None:
        self.said.append(f"checked {checked.verdict} into {folder.name}")

    def failed(self, name: str, error: ConveyorError) -> None:
        self.said.append(f"{name} failed")
        self.errors.append(error)


def test_the_job_runs_checks_reports_and_releases(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = small(project).root
    project.write("params.yaml", "q: 0.8\n")
    heard = Heard()
    capsys.readouterr()
    done = run_job(root, JobOptions(release=True, base="HEAD"), heard)
    assert capsys.readouterr().out == ""
    assert done.code == 0
    assert [(s.name, s.result) for s in done.steps] == [
        ("pull", "skipped: no default remote"),
        ("run", "ok"),
        ("check", "passed"),
        ("report", "reports/report.md"),
        ("release", "no declared models"),
    ]
    assert heard.said == [
        "step run",
        "evaluate running",
        "evaluate ran",
        "ran {'ran': 1}",
        "step check",
        "checked pass into reports",
    ]
    assert done.report == root / "reports" / "report.md"
    assert "vs HEAD" in done.report.read_text() and "| params.q | 0.9 | 0.8 |" in (
        done.report.read_text()
    )


def test_failing_gates_fail_the_job_and_hold_the_release(project: Project) -> None:
    root = small(project).root
    project.write("params.yaml", "q: 0.3\n")
    done = run_job(root, JobOptions(release=True, pull=False, base="HEAD"), Heard())
    assert done.code == 1 and done.checked is not None and done.checked.verdict == "fail"
    steps = {s.name: s.result for s in done.steps}
    assert steps["pull"] == "skipped" and steps["check"] == "FAILED"
    assert steps["release"] == "skipped: the gates failed"


def test_a_step_that_cannot_be_done_ends_the_job_with_its_code(project: Project) -> None:
    root = small(project).root
    project.write("conveyor.yaml", "stages:\n  evaluate:\n    cmdd: true\n")
    heard = Heard()
    done = run_job(root, JobOptions(pull=False), heard)
    assert done.code == 2 and [s.name for s in done.steps] == ["pull", "run"]
    assert done.steps[-1].result == "exit 2" and "run failed" in heard.said
    assert isinstance(heard.errors[0], ConfigError) and "cmdd" in heard.errors[0].message


def test_a_bad_gate_ends_the_job_before_any_stage_runs(project: Project) -> None:
    from tests.ci.flows import PIPELINE

    root = small(project).root
    project.write("params.yaml", "q: 0.7\n")  # the stage is stale: a run would write eval.json
    project.write("conveyor.yaml", PIPELINE.replace("min: 0.6", "min: lots"))
    before = (root / "eval.json").read_bytes()
    heard = Heard()
    done = run_job(root, JobOptions(pull=False), heard)
    assert done.code == 2 and [s.name for s in done.steps] == ["pull", "run"]
    assert isinstance(heard.errors[0], ConfigError) and "min" in heard.errors[0].message
    assert (root / "eval.json").read_bytes() == before
