"""The paired comparison of a candidate with a baseline on the same examples (the offline
gates: both models scored one evaluation set). ``candidate`` and ``baseline`` are predictions
(counting metrics) or scores (the others), as in :mod:`conveyor.stats.metrics`.

    paired("accuracy", label, candidate_pred, baseline_pred).low   # > 0: really better

Paired bootstrap of the difference ``metric(candidate) - metric(baseline)``:

- **counting metrics** (accuracy, precision, recall, f1, error rate): each example falls in one
  of 16 cells (label, candidate right/positive, baseline right/positive). Resampling n examples
  with replacement draws the cell counts from a multinomial, so B resamples are B multinomial
  draws over 16 cells: exact, and instant for any n.
- **mean metrics** (mse, rmse, mae, logloss, brier): resampled indices, in chunks.
- **auc**: DeLong's paired test (variance of the difference of two correlated AUCs, normal
  interval): bootstrapping a rank statistic a thousand times is what makes other tools slow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from conveyor.stats.metrics import COUNTING, auc_components, from_counts, losses

BINS = 2048


class Paired(NamedTuple):
    """The candidate's metric, the baseline's, their difference and its interval."""

    metric: str
    n: int
    candidate: float
    baseline: float
    difference: float
    low: float
    high: float
    confidence: float
    method: str
    p_value: float | None = None  # McNemar's exact test, for accuracy


def paired(
    name: str,
    label: Any,
    candidate: Any,
    baseline: Any,
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> Paired:
    """Compare two models on the same examples. ``candidate`` / ``baseline`` are predictions
    (counting metrics) or scores (the others)."""
    y = np.asarray(label, dtype=float)
    c = np.asarray(candidate, dtype=float)
    b = np.asarray(baseline, dtype=float)
    rng = np.random.default_rng(seed)
    if name in COUNTING:
        return _paired_counts(name, y, c, b, confidence, resamples, rng)
    if name == "auc":
        return _paired_auc(y, c, b, confidence)
    return _paired_means(name, y, c, b, confidence, resamples, rng)


def _paired_counts(
    name: str, y: Any, c: Any, b: Any, confidence: float, resamples: int, rng: Any
) -> Paired:
    n = len(y)
    pos = (y == 1).astype(int)
    right_c, right_b = (c == y), (b == y)
    # A cell: the label is positive, each model predicted positive, each model was right (the
    # last two differ from the first ones only for labels other than 0 and 1).
    keys = pos * 4 + (c == 1) * 2 + (b == 1)
    cells = np.stack([keys, right_c, right_b]).T
    uniq, inverse = np.unique(cells, axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), minlength=len(uniq)).astype(float)
    draws = rng.multinomial(n, counts / n, size=resamples).astype(float)  # B x cells

    def stat(weights: Any, which: int) -> Any:
        k = uniq[:, 0]
        positive_label = (k >> 2) & 1
        predicted = (k >> 1) & 1 if which == 0 else k & 1
        right = uniq[:, 1 + which]
        tp = weights @ (positive_label & predicted)
        fp = weights @ ((1 - positive_label) & predicted)
        fn = weights @ (positive_label & (1 - predicted))
        correct = weights @ right
        total = weights.sum(axis=-1)
        return from_counts(name, correct, total, tp, fp, fn)

    cand, base = float(stat(counts, 0)), float(stat(counts, 1))
    diffs = stat(draws, 0) - stat(draws, 1)
    low, high = _percentiles(diffs, confidence)
    p_value = None
    if name in ("accuracy", "error_rate"):
        won = int(np.sum(right_c & ~right_b))
        lost = int(np.sum(~right_c & right_b))
        p_value = mcnemar_exact(won, lost)
    return Paired(
        name, n, cand, base, cand - base, low, high, confidence,
        f"paired bootstrap, {resamples} resamples", p_value,
    )  # fmt: skip


def _paired_means(
    name: str, y: Any, c: Any, b: Any, confidence: float, resamples: int, rng: Any
) -> Paired:
    """Up to BINS examples: the plain paired bootstrap (a multinomial over the examples). More:
    examples sorted by their loss difference and grouped into BINS equal-count bins, each
    standing for its members' mean losses; resampled as a multinomial over the bins. The bins
    are so narrow that the interval moves by far less than its own sampling noise."""
    n = len(y)
    lc, lb = losses(name, y, c), losses(name, y, b)
    if n <= BINS:
        weights, mean_c, mean_b = np.full(n, 1.0 / n), lc, lb
    else:
        order = np.argsort(lc - lb, kind="stable")
        group = np.empty(n, dtype=np.int64)
        group[order] = (np.arange(n) * BINS) // n
        size = np.bincount(group, minlength=BINS).astype(float)
        mean_c = np.bincount(group, lc, minlength=BINS) / size
        mean_b = np.bincount(group, lb, minlength=BINS) / size
        weights = size / n
    draws = rng.multinomial(n, weights, size=resamples) / n  # B x bins, rows sum to 1
    finish: Callable[[Any], Any] = np.sqrt if name == "rmse" else (lambda v: v)
    diffs = finish(draws @ mean_c) - finish(draws @ mean_b)
    low, high = _percentiles(diffs, confidence)
    cand, base = float(finish(lc.mean())), float(finish(lb.mean()))
    return Paired(
        name, n, cand, base, cand - base, low, high, confidence,
        f"paired bootstrap, {resamples} resamples",
    )  # fmt: skip


def _paired_auc(y: Any, c: Any, b: Any, confidence: float) -> Paired:
    """DeLong, DeLong & Clarke-Pearson (1988): the covariance of two AUCs on the same examples
    from their structural components."""
    auc_c, v10_c, v01_c = auc_components(c, y)
    auc_b, v10_b, v01_b = auc_components(b, y)
    m, n = len(v10_c), len(v01_c)
    if m < 2 or n < 2:
        nan = float("nan")
        return Paired("auc", len(y), auc_c, auc_b, auc_c - auc_b, nan, nan, confidence, "DeLong")
    s10 = np.cov(np.stack([v10_c, v10_b]))
    s01 = np.cov(np.stack([v01_c, v01_b]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    z = _z(confidence)
    half = z * math.sqrt(max(var, 0.0))
    diff = auc_c - auc_b
    return Paired("auc", len(y), auc_c, auc_b, diff, diff - half, diff + half, confidence, "DeLong")


def mcnemar_exact(won: int, lost: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (candidate right and baseline
    wrong: ``won``; the reverse: ``lost``): a binomial test of won vs lost at p = 1/2, summed in
    log space so that tens of thousands of pairs cost milliseconds."""
    total = won + lost
    if total == 0:
        return 1.0
    k = min(won, lost)
    log_half = total * math.log(0.5)
    top = math.lgamma(total + 1)
    terms = [top - math.lgamma(i + 1) - math.lgamma(total - i + 1) + log_half for i in range(k + 1)]
    peak = max(terms)
    tail = math.exp(peak) * math.fsum(math.exp(t - peak) for t in terms)
    return min(1.0, 2 * tail)


def _percentiles(values: Any, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)
