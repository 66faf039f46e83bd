"""Folding spool records into store rows: what a store would refuse never reaches it."""

from __future__ import annotations

import json
import sys

from tests.conftest import Project


def test_a_nan_metric_does_not_block_the_store(in_project: Project) -> None:
    in_project.write(
        "ev.py", 'import json\njson.dump({"auc": float("nan"), "n": 3}, open("m.json", "w"))\n'
    )
    in_project.write(
        "conveyor.yaml", f"stages:\n  ev:\n    cmd: {sys.executable} ev.py\n    metrics: [m.json]\n"
    )
    in_project.ok("run")
    rows = json.loads(in_project.ok("runs", "list", "--json"))
    assert rows[0]["metrics"] == {"m.n": 3.0}
