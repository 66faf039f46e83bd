"""The paired comparison against reference implementations (scikit-learn, scipy) and known
answers; the bootstrap's coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn import metrics as skm

from conveyor.stats import paired as stats
from tests.stats.conftest import labelled


def test_mcnemar_matches_the_exact_binomial_test() -> None:
    for won, lost in ((10, 2), (3, 3), (0, 7), (25, 40)):
        expected = sps.binomtest(min(won, lost), won + lost, 0.5).pvalue
        assert stats.mcnemar_exact(won, lost) == pytest.approx(expected)
    assert stats.mcnemar_exact(0, 0) == 1.0


def test_a_better_candidate_has_an_interval_above_zero() -> None:
    y, strong = labelled(3000, seed=1, skill=2.0)
    _, weak = labelled(3000, seed=2, skill=0.5)
    result = stats.paired("accuracy", y, (strong > 0.5).astype(int), (weak > 0.5).astype(int))
    assert result.difference > 0 and result.low > 0 and result.p_value is not None
    assert result.p_value < 1e-6 and result.n == 3000
    auc = stats.paired("auc", y, strong, weak)
    assert auc.low > 0 and auc.method == "DeLong"
    loss = stats.paired("logloss", y, strong, weak)
    assert loss.high < 0  # lower is better: the interval is below zero


def test_equal_models_have_an_interval_around_zero() -> None:
    y, score = labelled(2000, seed=3)
    pred = (score > 0.5).astype(int)
    for name, c in (("f1", pred), ("auc", score), ("brier", score)):
        result = stats.paired(name, y, c, c)
        assert result.difference == 0 and result.low <= 0 <= result.high, name


def test_bootstrap_interval_covers_the_true_difference() -> None:
    """Coverage: over 200 data sets drawn from known models, the 90% interval of the accuracy
    difference holds the true difference about 90% of the time."""
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(200):
        y = rng.integers(0, 2, 400)
        right_c = rng.random(400) < 0.80
        right_b = rng.random(400) < 0.75
        c = np.where(right_c, y, 1 - y)
        b = np.where(right_b, y, 1 - y)
        r = stats.paired("accuracy", y, c, b, confidence=0.9, seed=int(rng.integers(1 << 30)))
        hits += r.low <= 0.05 <= r.high
    assert 160 <= hits <= 196


def test_delong_variance_matches_a_bootstrap() -> None:
    y, a = labelled(800, seed=5, skill=1.5)
    _, b = labelled(800, seed=6, skill=1.0)
    delong = stats.paired("auc", y, a, b, confidence=0.95)
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(400):
        i = rng.integers(0, 800, 800)
        diffs.append(skm.roc_auc_score(y[i], a[i]) - skm.roc_auc_score(y[i], b[i]))
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    assert delong.low == pytest.approx(lo, abs=0.02) and delong.high == pytest.approx(hi, abs=0.02)
