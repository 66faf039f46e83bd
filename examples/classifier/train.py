"""Fit a logistic regression on data/prepared/train.csv; write the model and train metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor import models

# A model package: the model saved with skops (loading never runs arbitrary code), with the
# signature inferred from a few training rows and the pinned versions it needs.
MODEL = Path("models/classifier")
METRICS = Path("metrics/train.json")


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of a prepared CSV (columns: id, features..., label)."""
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    return table[:, 1:-1], table[:, -1].astype(int)


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["train"]
    x, y = load(Path("data/prepared/train.csv"))
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=float(params["C"]), max_iter=int(params["max_iter"])),
    )
    model.fit(x, y)

    shutil.rmtree(MODEL, ignore_errors=True)
    models.save(model, MODEL, example=x[:5], name="classifier")
    METRICS.parent.mkdir(parents=True, exist_ok=True)
    accuracy = float(model.score(x, y))
    METRICS.write_text(json.dumps({"accuracy": round(accuracy, 6), "n": len(y)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
