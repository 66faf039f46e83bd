"""Fit a logistic regression on data/prepared/train.csv; write the model and train metrics."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# skops is not installed in this environment, so the model is a joblib pickle for now; the model
# registry issue moves it to skops (which loads without executing arbitrary code).
MODEL = Path("models/model.joblib")
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

    MODEL.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, MODEL)
    METRICS.parent.mkdir(parents=True, exist_ok=True)
    accuracy = float(model.score(x, y))
    METRICS.write_text(json.dumps({"accuracy": round(accuracy, 6), "n": len(y)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
