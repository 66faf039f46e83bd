"""The metrics the gates recompute from a predictions table, and the change formula.

Pure functions over numpy arrays. A predictions table holds, per example, the ``label`` and the
model's ``prediction`` (a class) and/or ``score`` (a probability of the positive class, or the
predicted value of a regression).

    compute("f1", label, prediction=pred)       # one model's metric
    metric_name("metrics/eval.json:roc_auc")    # -> "auc"
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

COUNTING = ("accuracy", "error_rate", "precision", "recall", "f1")
MEANS = ("mse", "rmse", "mae", "logloss", "brier")
RANKING = ("auc",)
METRICS = (*COUNTING, *MEANS, *RANKING, "r2")
ALIASES = {"acc": "accuracy", "roc_auc": "auc", "f1_score": "f1", "log_loss": "logloss"}
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "auc", "r2"}
_EPS = 1e-15


def metric_name(key: str) -> str | None:
    """The computable metric a metric key names (``eval.f1`` -> ``f1``), or None."""
    leaf = key.rsplit(":", 1)[-1].rsplit(".", 1)[-1].lower()
    leaf = ALIASES.get(leaf, leaf)
    return leaf if leaf in METRICS else None


# -- metrics of one model ---------------------------------------------------------------------


def compute(name: str, label: Any, prediction: Any = None, score: Any = None) -> float:
    """``name`` of one model's predictions (``prediction`` for counting metrics, ``score`` for
    auc, logloss, brier and regression errors)."""
    y = np.asarray(label, dtype=float)
    if name in COUNTING:
        p = np.asarray(prediction, dtype=float)
        tp = float(np.sum((y == 1) & (p == 1)))
        fp = float(np.sum((y != 1) & (p == 1)))
        fn = float(np.sum((y == 1) & (p != 1)))
        correct = float(np.sum(y == p))
        return float(from_counts(name, correct, len(y), tp, fp, fn))
    s = np.asarray(score, dtype=float)
    if name == "auc":
        return float(auc_components(s, y)[0])
    if name == "r2":
        total = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - s) ** 2)) / total if total else float("nan")
    mean = float(np.mean(losses(name, y, s)))
    return math.sqrt(mean) if name == "rmse" else mean


def from_counts(name: str, correct: Any, n: Any, tp: Any, fp: Any, fn: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "accuracy":
            return correct / n
        if name == "error_rate":
            return 1 - correct / n
        if name == "precision":
            return np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0) * 1.0
        if name == "recall":
            return np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0) * 1.0
        return np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0) * 1.0


def losses(name: str, y: Any, s: Any) -> Any:
    if name in ("mse", "rmse"):
        return (y - s) ** 2
    if name == "mae":
        return np.abs(y - s)
    if name == "brier":
        return (s - y) ** 2
    p = np.clip(s, _EPS, 1 - _EPS)  # logloss
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def auc_components(score: Any, y: Any) -> tuple[float, Any, Any]:
    """AUC and DeLong's placement values (V10 per positive, V01 per negative), via midranks."""
    pos, neg = score[y == 1], score[y != 1]
    m, n = len(pos), len(neg)
    if not m or not n:
        return float("nan"), np.zeros(m), np.zeros(n)
    ranks_all = midranks(np.concatenate([pos, neg]))
    ranks_pos, ranks_neg = midranks(pos), midranks(neg)
    v10 = (ranks_all[:m] - ranks_pos) / n
    v01 = 1.0 - (ranks_all[m:] - ranks_neg) / m
    return float(v10.mean()), v10, v01


def midranks(x: Any) -> Any:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    _, first, counts = np.unique(sorted_x, return_index=True, return_counts=True)
    mid = first + (counts + 1) / 2.0  # 1-based midrank of each distinct value
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mid, counts)
    return ranks


# -- change ----------------------------------------------------------------------------------


def change(candidate: float, baseline: float, *, relative: bool) -> float | None:
    """``candidate - baseline``, or relative to the baseline's magnitude:
    ``(candidate - baseline) / |baseline|`` (None when the baseline is 0: undefined). Dividing by
    the magnitude keeps the sign meaning "went up" for negative baselines too."""
    diff = candidate - baseline
    if not relative:
        return diff
    if baseline == 0:
        return None
    return diff / abs(baseline)
