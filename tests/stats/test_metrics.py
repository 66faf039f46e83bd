"""The metrics against scikit-learn and known answers; the change formulas at zero and
negative baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from conveyor.stats import metrics as stats
from tests.stats.conftest import labelled


@pytest.mark.parametrize("name", ["accuracy", "precision", "recall", "f1"])
def test_counting_metrics_match_scikit_learn(name: str) -> None:
    y, score = labelled(500)
    pred = (score > 0.5).astype(int)
    reference = {"accuracy": skm.accuracy_score, "precision": skm.precision_score,
                 "recall": skm.recall_score, "f1": skm.f1_score}[name](y, pred)  # fmt: skip
    assert stats.compute(name, y, prediction=pred) == pytest.approx(reference)


def test_score_metrics_match_scikit_learn() -> None:
    y, score = labelled(500)
    assert stats.compute("auc", y, score=score) == pytest.approx(skm.roc_auc_score(y, score))
    assert stats.compute("logloss", y, score=score) == pytest.approx(skm.log_loss(y, score))
    assert stats.compute("brier", y, score=score) == pytest.approx(skm.brier_score_loss(y, score))
    t = np.linspace(0, 1, 50)
    guess = t + np.sin(t)
    assert stats.compute("rmse", t, score=guess) == pytest.approx(
        math.sqrt(skm.mean_squared_error(t, guess))
    )
    assert stats.compute("r2", t, score=guess) == pytest.approx(skm.r2_score(t, guess))
    assert stats.compute("auc", [1, 0, 1, 0], score=[0.5, 0.5, 0.5, 0.5]) == 0.5  # ties: midranks


def test_metric_names_from_keys() -> None:
    assert stats.metric_name("eval.f1") == "f1"
    assert stats.metric_name("metrics/eval.json:roc_auc") == "auc"
    assert stats.metric_name("eval.n") is None


def test_change_formulas() -> None:
    assert stats.change(0.91, 0.90, relative=False) == pytest.approx(0.01)
    assert stats.change(0.99, 0.90, relative=True) == pytest.approx(0.1)
    # A negative baseline: going from -2 to -1 is up, and the relative change says so.
    assert stats.change(-1.0, -2.0, relative=True) == pytest.approx(0.5)
    assert stats.change(-3.0, -2.0, relative=True) == pytest.approx(-0.5)
    assert stats.change(0.5, 0.0, relative=True) is None
    assert stats.change(0.5, 0.0, relative=False) == 0.5
