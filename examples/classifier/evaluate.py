"""Score the model on data/prepared/test.csv.

Writes metrics/eval.json (accuracy, auc, f1, recall, n), plots/roc.csv (fpr, tpr, threshold)
and eval/predictions.csv (id, label, score, prediction, size): quality gates pair a candidate's
predictions with the champion's by id, and hold each size (a slice: tumours with a mean radius
from 15 are "large") to the same bar.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score, roc_curve

from conveyor import models

MODEL = Path("models/classifier")


def main() -> None:
    threshold = float(yaml.safe_load(Path("params.yaml").read_text())["evaluate"]["threshold"])
    table = np.loadtxt("data/prepared/test.csv", delimiter=",", skiprows=1)
    ids, x, y = table[:, 0].astype(int), table[:, 1:-1], table[:, -1].astype(int)
    model = models.load(MODEL)  # checks each input against the package's signature
    score = model.predict_proba(x)[:, 1]
    prediction = (score >= threshold).astype(int)

    metrics = {
        "accuracy": accuracy_score(y, prediction),
        "auc": roc_auc_score(y, score),
        "f1": f1_score(y, prediction),
        "recall": recall_score(y, prediction),
    }
    metrics = {key: round(float(value), 6) for key, value in metrics.items()}
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/eval.json").write_text(json.dumps({**metrics, "n": len(y)}, indent=2) + "\n")

    fpr, tpr, thresholds = roc_curve(y, score)
    # The curve's first point has threshold +inf (nothing predicted positive); scores are
    # probabilities, so 1.0 says the same in a form every CSV and plot reader accepts.
    thresholds = np.minimum(thresholds, 1.0)
    Path("plots").mkdir(exist_ok=True)
    with open("plots/roc.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["fpr", "tpr", "threshold"])
        columns = (fpr.round(6).tolist(), tpr.round(6).tolist(), thresholds.round(6).tolist())
        writer.writerows(zip(*columns, strict=True))

    Path("eval").mkdir(exist_ok=True)
    with open("eval/predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label", "score", "prediction", "size"])
        size = np.where(x[:, 0] >= 15, "large", "small").tolist()
        columns = (ids.tolist(), y.tolist(), score.round(6).tolist(), prediction.tolist(), size)
        writer.writerows(zip(*columns, strict=True))


if __name__ == "__main__":
    main()
