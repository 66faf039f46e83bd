"""A small real project for the CI flows' tests: one stage writes a metric and a predictions
table from a param, and the gates hold the metric to a threshold."""

from __future__ import annotations

import sys

from tests.conftest import Project

EVALUATE = """\
import csv, json, yaml
q = float(yaml.safe_load(open("params.yaml"))["q"])
json.dump({"accuracy": q}, open("eval.json", "w"))
with open("preds.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "label", "prediction"])
    for i in range(40):
        w.writerow([i, i % 2, i % 2 if i < 40 * q else 1 - i % 2])
"""

PIPELINE = f"""\
stages:
  evaluate:
    cmd: {sys.executable} evaluate.py
    deps: [evaluate.py]
    params: [q]
    metrics: [eval.json]
    outs: [preds.csv]
gates:
  checks:
    - metric: eval.accuracy
      min: 0.6
"""


def small(project: Project, q: float = 0.9) -> Project:
    """The project run once and committed; ``q`` the metric's value."""
    project.write("evaluate.py", EVALUATE)
    project.write("params.yaml", f"q: {q}\n")
    project.write("conveyor.yaml", PIPELINE)
    project.ok("run")
    project.git("add", "-A")
    project.git("commit", "-qm", "base")
    return project
