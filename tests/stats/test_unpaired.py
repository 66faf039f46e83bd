"""The unpaired comparisons against scipy on seeded data and against published answers; the
edges a rollout meets (no spread, tiny samples, all successes) are inconclusive, never a pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from conveyor.stats.unpaired import (
    Comparison,
    judge,
    mann_whitney,
    quantiles,
    two_proportions,
    welch,
    wilson,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


# -------------------------------------------------------------------------------- proportions


def test_two_proportions_match_scipy_and_newcombe() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a), method 10: 0.0524 to 0.3339.
    r = two_proportions(56, 70, 48, 80)
    assert r.estimate == pytest.approx(0.2) and r.effect == "difference" and r.null == 0
    assert r.low == pytest.approx(0.0524, abs=5e-5) and r.high == pytest.approx(0.3339, abs=5e-5)
    cases = ((56, 70, 48, 80), (30, 1000, 45, 1000), (7, 40, 2, 35), (3, 500, 0, 400))
    for kc, nc, kb, nb in cases:
        table = [[kc, nc - kc], [kb, nb - kb]]
        expected = sps.chi2_contingency(table, correction=False).pvalue
        assert two_proportions(kc, nc, kb, nb).p_value == pytest.approx(expected, rel=1e-9)
    z = sps.norm.ppf(0.975)
    for k, n in ((0, 30), (12, 40), (40, 40), (1, 1000)):
        ci = sps.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson(k, n, z) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_all_successes_and_all_failures_keep_an_interval() -> None:
    same = two_proportions(200, 200, 200, 200)
    assert same.estimate == 0 and same.p_value == 1.0 and same.conclusive
    assert same.low < 0 < same.high and same.high - same.low > 0.01  # not a zero-width claim
    assert judge(same, limit=-0.05, higher_is_better=True) == "acceptable"
    assert judge(same, limit=-0.001, higher_is_better=True) == "inconclusive"
    perfect = two_proportions(400, 400, 360, 400)
    assert perfect.low > 0 and perfect.high <= 1 and _p(perfect) < 1e-10
    no_errors = two_proportions(0, 500, 0, 500)
    assert no_errors.p_value == 1.0 and no_errors.low < 0 < no_errors.high


def test_a_worse_error_rate_is_worse_and_a_slight_one_is_not_decided() -> None:
    worse = two_proportions(80, 2000, 40, 2000)  # 4% against 2%: at least 0.9 points worse
    assert judge(worse, limit=0.005, higher_is_better=False) == "worse"
    assert judge(worse, limit=0.01, higher_is_better=False) == "inconclusive"
    slight = two_proportions(22, 1000, 20, 1000)
    assert judge(slight, limit=0.005, higher_is_better=False) == "inconclusive"
    assert judge(slight, limit=0.03, higher_is_better=False) == "acceptable"


def test_the_proportion_interval_covers_the_true_difference(rng: np.random.Generator) -> None:
    hits = 0
    for _ in range(300):
        kc, kb = int(rng.binomial(300, 0.1)), int(rng.binomial(250, 0.06))
        r = two_proportions(kc, 300, kb, 250, confidence=0.9)
        hits += r.low <= 0.04 <= r.high
    assert 250 <= hits <= 290


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="0 <= successes <= total, not 5 of 4"):
        two_proportions(5, 4, 1, 10)


# ---------------------------------------------------------------------------- continuous


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_welch_matches_scipy(rng: np.random.Generator, confidence: float) -> None:
    a, b = rng.normal(1.0, 2.0, 200), rng.normal(0.6, 1.0, 150)
    ours = welch(a, b, confidence=confidence)
    theirs = sps.ttest_ind(a, b, equal_var=False)
    ci = theirs.confidence_interval(confidence)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert ours.estimate == pytest.approx(a.mean() - b.mean()) and ours.candidate == a.mean()
    # One constant side still has the other's spread: scipy and Welch agree.
    flat = welch(np.full(50, 1.0), b)
    expected = sps.ttest_ind_from_stats(1.0, 0.0, 50, b.mean(), b.std(ddof=1), len(b), False)
    assert flat.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_no_spread_is_inconclusive_not_a_pass() -> None:
    same = welch(np.full(100, 3.0), np.full(100, 3.0))
    assert not same.conclusive and "no spread" in str(same.inconclusive)
    assert judge(same, limit=0.1, higher_is_better=False) == "inconclusive"
    apart = welch(np.full(100, 3.0), np.full(100, 2.0))
    assert judge(apart, limit=0.1, higher_is_better=False) == "inconclusive"
    tied = mann_whitney(np.full(60, 5.0), np.full(60, 5.0))
    assert not tied.conclusive and tied.estimate == 0.5 and "same" in str(tied.inconclusive)


def test_mann_whitney_matches_scipy(rng: np.random.Generator) -> None:
    a, b = rng.normal(0.3, 1, 120), rng.normal(0, 1, 90)
    ints_a, ints_b = rng.integers(0, 6, 80), rng.integers(1, 7, 70)  # many ties
    for x, y in ((a, b), (ints_a, ints_b), (b, a)):
        ours = mann_whitney(x, y)
        theirs = sps.mannwhitneyu(x, y, method="asymptotic", use_continuity=True)
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
        assert ours.estimate == pytest.approx(theirs.statistic / (len(x) * len(y)))
        assert ours.candidate == np.median(x) and ours.null == 0.5
    # DeLong's interval of P(candidate > baseline) against scipy's bootstrap of the same.
    ours = mann_whitney(a, b)
    boot = sps.bootstrap(
        (a, b),
        lambda x, y, axis: sps.mannwhitneyu(x, y, axis=axis).statistic / (len(a) * len(b)),
        paired=False,
        vectorized=True,
        method="percentile",
        n_resamples=2000,
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert ours.low == pytest.approx(boot.low, abs=0.015)
    assert ours.high == pytest.approx(boot.high, abs=0.015)


def test_tiny_samples_are_inconclusive_never_a_pass() -> None:
    tiny = [
        two_proportions(0, 5, 3, 5),
        two_proportions(0, 0, 0, 0),
        welch([1.0, 2.0, 3.0], [1.0, 2.0, 2.5]),
        welch([], [1.0] * 100),
        mann_whitney([1.0, 2.0], [3.0, 4.0, 5.0]),
        quantiles(np.arange(300.0), np.arange(5000.0), q=0.99),
    ]
    for r in tiny:
        assert not r.conclusive and str(r.inconclusive).startswith("too few"), r
        assert judge(r, limit=1e9, higher_is_better=False) == "inconclusive"
        assert judge(r, limit=-1e9, higher_is_better=True) == "inconclusive"
        assert r.to_dict()["low"] is None
    assert "candidate sample for a p99: 300 (3 beyond it)" in str(tiny[-1].inconclusive)


# ---------------------------------------------------------------------------------- quantiles


def test_quantile_ratio_matches_a_scipy_bootstrap(rng: np.random.Generator) -> None:
    stable, candidate = rng.lognormal(0, 0.5, 3000), rng.lognormal(0.1, 0.5, 2500)

    def ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        top = np.quantile(x, 0.99, method="inverted_cdf", axis=axis)
        return top / np.quantile(y, 0.99, method="inverted_cdf", axis=axis)

    ours = quantiles(candidate, stable, q=0.99, resamples=20_000)
    theirs = sps.bootstrap(
        (candidate, stable), ratio, paired=False, method="percentile", n_resamples=2000,
        rng=np.random.default_rng(1),
    ).confidence_interval  # fmt: skip
    assert ours.statistic == "p99" and ours.effect == "ratio" and ours.null == 1.0
    assert ours.estimate == pytest.approx(ratio(candidate, stable))
    assert ours.low == pytest.approx(theirs.low, rel=0.01)
    assert ours.high == pytest.approx(theirs.high, rel=0.01)
    median = quantiles(candidate, stable, q=0.5, ratio=False)
    expected = np.median(candidate) - np.median(stable)
    assert median.effect == "difference" and median.low <= expected <= median.high


def test_a_slower_p99_is_worse_and_the_same_one_is_acceptable(rng: np.random.Generator) -> None:
    stable = rng.lognormal(0, 0.5, 20_000)
    slower = quantiles(rng.lognormal(0, 0.5, 20_000) * 1.5, stable)
    assert judge(slower, limit=1.2, higher_is_better=False) == "worse"
    same = quantiles(rng.lognormal(0, 0.5, 20_000), stable)
    assert 0.9 < same.low < same.estimate < same.high < 1.1
    assert judge(same, limit=1.2, higher_is_better=False) == "acceptable"
    # Identical latencies: the p99 is exactly the same, and the bootstrap says so.
    flat = quantiles(np.full(2000, 0.005), np.full(2000, 0.005))
    assert (flat.low, flat.high) == (1.0, 1.0)
    zero = quantiles(np.ones(2000), np.zeros(2000))
    assert "no ratio" in str(zero.inconclusive)


# ------------------------------------------------------------------------------------ judge


def test_judge_reads_the_interval_against_the_limit() -> None:
    def comparison(low: float, high: float) -> Comparison:
        return Comparison("mean", "test", 100, 100, 1.0, 1.0, "difference", (low + high) / 2,
                          low, high, 0.0, 0.95)  # fmt: skip

    assert judge(comparison(0.01, 0.04), limit=0.05, higher_is_better=False) == "acceptable"
    assert judge(comparison(0.06, 0.09), limit=0.05, higher_is_better=False) == "worse"
    assert judge(comparison(0.03, 0.07), limit=0.05, higher_is_better=False) == "inconclusive"
    assert judge(comparison(-0.01, 0.02), limit=-0.02, higher_is_better=True) == "acceptable"
    assert judge(comparison(-0.08, -0.03), limit=-0.02, higher_is_better=True) == "worse"
    assert judge(comparison(math.nan, math.nan), limit=0, higher_is_better=True) == "inconclusive"


def _p(r: Comparison) -> float:
    assert r.p_value is not None
    return r.p_value
