"""A small real project for the retrain flow's tests: one stage learns a threshold from
``data/rows.csv``, writes a python-flavor package of it (``clf``) and its accuracy; the gates
hold the accuracy to 0.6, and ``production`` rolls versions out as a canary."""

from __future__ import annotations

import sys
from pathlib import Path

from conveyor.deploy import flows
from conveyor.tracking.events import Event
from tests.conftest import Project
from tests.deploy.projects import environment

TRAIN = """\
import csv, json, os, tempfile, time
from pathlib import Path
from conveyor import models
while Path("hold").exists():  # a test holds the run here to see a retrain in flight
    time.sleep(0.02)
rows = [(float(x), int(y)) for x, y in list(csv.reader(open("data/rows.csv")))[1:]]
threshold = sum(x for x, _ in rows) / len(rows)
right = sum((x > threshold) == bool(y) for x, y in rows)
json.dump({"accuracy": right / len(rows)}, open("eval.json", "w"))
code = f'''\\
THRESHOLD = {threshold!r}


class Model:
    def predict(self, x):
        return [int(row[0] > THRESHOLD) for row in x]


def load(folder):
    return Model()
'''
with tempfile.TemporaryDirectory() as tmp:
    # a module name of its own per model: a server loads every version's code in one process
    name = f"clf_threshold_{round(threshold * 1000)}"
    module = Path(tmp) / f"{name}.py"
    module.write_text(code)
    models.save(None, "model", flavor="python", loader=f"{name}:load", code=[module],
                name="clf")
"""

PIPELINE = f"""\
stages:
  train:
    cmd: {sys.executable} train.py
    deps: [train.py, data/rows.csv]
    outs: [model]
    metrics: [eval.json]
models:
  clf:
    path: model
gates:
  checks:
    - metric: eval.accuracy
      min: 0.6
"""


def rows(n: int, *, flipped: bool = False) -> str:
    """``n`` rows of x = 0..n-1, labelled 1 from the middle up (the other way when flipped)."""
    lines = ["x,y"] + [f"{x},{int((x >= n / 2) != flipped)}" for x in range(n)]
    return "\n".join(lines) + "\n"


def deployed(project: Project) -> Project:
    """The pipeline run once, its package registered as ``clf`` version 1 and serving all of
    ``production``."""
    project.write("train.py", TRAIN)
    project.write("data/rows.csv", rows(20))
    project.write("conveyor.yaml", PIPELINE + environment())
    project.ok("run", "--register")
    project.ok("deploy", "clf/1", "--env", "production")
    return project


def retrains(root: Path) -> list[Event]:
    """The retrain events of ``production``, oldest first."""
    return [e for e in flows.history(root, "production") if e.kind.startswith("retrain.")]
