"""A pipeline run's record: only stages whose outs are this run's say something about it."""

from __future__ import annotations

import json
import sys

from tests.conftest import Project


def test_a_failed_run_records_no_stale_metrics_and_a_typo_no_run(project: Project) -> None:
    project.write("params.yaml", "x: 1\n")
    project.write(
        "s.py",
        "import json, sys, yaml\n"
        "x = yaml.safe_load(open('params.yaml'))['x']\n"
        "sys.exit(1) if x < 0 else json.dump({'v': x}, open('m.json', 'w'))\n",
    )
    project.write(
        "conveyor.yaml",
        f"stages:\n  s:\n    cmd: {sys.executable} s.py\n    params: [x]\n    metrics: [m.json]\n",
    )
    project.ok("run", "-n", "good")
    assert project.run("run", "-S", "x=-1", "-n", "bad").code == 1
    assert project.run("run", "nosuchstage").code == 2
    rows = {r["name"]: r for r in json.loads(project.ok("runs", "list", "--json"))}
    assert set(rows) == {"good", "bad"}
    assert rows["good"]["metrics"] == {"m.v": 1.0} and rows["bad"]["metrics"] == {}
