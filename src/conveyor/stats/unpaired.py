"""A candidate against a baseline on different samples: what rollout analysis compares (the
candidate and the stable version answer different requests) and what monitoring compares (this
window against a reference one).

    two_proportions(errors_c, requests_c, errors_b, requests_b)   # error rate, accuracy
    welch(values_c, values_b)                                     # means: Welch's t
    mann_whitney(values_c, values_b)                              # a shift: ranks
    quantiles(latencies_c, latencies_b, q=0.99)                   # p99: a ratio

Each returns a :class:`Comparison`: both sides' statistic, the effect (a difference, a ratio or
a probability) with its interval, a p-value where the method has one, and ``inconclusive``:
why the samples cannot tell (too few values, no spread), None when they can. :func:`judge` holds
a comparison to a limit and answers ``acceptable``, ``worse`` or ``inconclusive``: too little
traffic is never a pass. tests/stats/test_unpaired.py checks each method against scipy.

Pure: numpy, and scipy for the t and binomial distributions (imported on first use).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from conveyor.stats.metrics import auc_components

Judgement = Literal["acceptable", "worse", "inconclusive"]
MIN_SAMPLES = 30  # fewer values on either side: inconclusive
MIN_TAIL = 10  # values a quantile needs beyond it on each side (p99: 1,000 values)


@dataclass(frozen=True)
class Comparison:
    """Candidate against baseline: ``estimate`` is the ``effect`` (``difference``: candidate
    minus baseline, ``ratio``: candidate over baseline, ``P(candidate > baseline)``), ``null``
    its value when the two are alike, [``low``, ``high``] its interval at ``confidence``."""

    statistic: str  # what candidate and baseline are: "proportion", "mean", "median", "p99"
    method: str
    n_candidate: int
    n_baseline: int
    candidate: float
    baseline: float
    effect: str
    estimate: float
    low: float
    high: float
    null: float
    confidence: float
    p_value: float | None = None
    inconclusive: str | None = None  # why the samples cannot tell; None when they can

    @property
    def conclusive(self) -> bool:
        return self.inconclusive is None and not (math.isnan(self.low) or math.isnan(self.high))

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in
                asdict(self).items()}  # fmt: skip


def judge(comparison: Comparison, *, limit: float, higher_is_better: bool) -> Judgement:
    """``acceptable`` when the whole interval is on the good side of ``limit``, ``worse`` when it
    is all on the bad side, ``inconclusive`` when it straddles the limit (more data would tell)
    or the samples cannot tell at all.

    >>> judge(two_proportions(5, 1000, 4, 1000), limit=0.02, higher_is_better=False)
    'acceptable'
    """
    if not comparison.conclusive:
        return "inconclusive"
    low, high = comparison.low, comparison.high
    if higher_is_better:
        return "acceptable" if low >= limit else "worse" if high < limit else "inconclusive"
    return "acceptable" if high <= limit else "worse" if low > limit else "inconclusive"


# -------------------------------------------------------------------------------- proportions


def two_proportions(
    successes_candidate: int,
    n_candidate: int,
    successes_baseline: int,
    n_baseline: int,
    *,
    confidence: float = 0.95,
    min_samples: int = MIN_SAMPLES,
) -> Comparison:
    """The difference of two proportions (errors per request, correct answers per label):
    Newcombe's hybrid score interval (Wilson intervals of each side combined, method 10 of
    Newcombe 1998, sound at 0 and 1 where the Wald interval collapses) and the pooled two-sided
    z test (the chi-squared test of the 2x2 table without continuity correction)."""
    for k, n in ((successes_candidate, n_candidate), (successes_baseline, n_baseline)):
        if not 0 <= k <= n:
            raise ValueError(f"a proportion needs 0 <= successes <= total, not {k} of {n}")
    kc, nc, kb, nb = successes_candidate, n_candidate, successes_baseline, n_baseline
    pc, pb = kc / nc if nc else math.nan, kb / nb if nb else math.nan
    diff = pc - pb
    short = _too_few(nc, nb, min_samples)
    if short is not None:
        return Comparison(
            "proportion", "two-proportion z test", nc, nb, pc, pb, "difference", diff,
            math.nan, math.nan, 0.0, confidence, None, short,
        )  # fmt: skip
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    lc, uc = wilson(kc, nc, z)
    lb, ub = wilson(kb, nb, z)
    low = diff - math.sqrt((pc - lc) ** 2 + (ub - pb) ** 2)
    high = diff + math.sqrt((uc - pc) ** 2 + (pb - lb) ** 2)
    pooled = (kc + kb) / (nc + nb)
    se = math.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nb))
    # Both sides all successes (or all failures): nothing tells them apart.
    p_value = math.erfc(abs(diff) / se / math.sqrt(2)) if se > 0 else 1.0
    return Comparison(
        "proportion", "two-proportion z test, Newcombe interval", nc, nb, pc, pb, "difference",
        diff, low, high, 0.0, confidence, p_value,
    )  # fmt: skip


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval of one proportion at the normal quantile ``z``."""
    p = successes / n
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# ---------------------------------------------------------------------------- continuous


def welch(
    candidate: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    min_samples: int = MIN_SAMPLES,
) -> Comparison:
    """The difference of two means without assuming equal variances: Welch's t test and its
    interval (Welch–Satterthwaite degrees of freedom). NaN and ±inf are left out."""
    c, b = _finite(candidate), _finite(baseline)
    nc, nb = len(c), len(b)
    mc = float(c.mean()) if nc else math.nan
    mb = float(b.mean()) if nb else math.nan
    short = _too_few(nc, nb, max(min_samples, 2))
    vc = float(c.var(ddof=1)) / nc if short is None else math.nan
    vb = float(b.var(ddof=1)) / nb if short is None else math.nan
    if short is None and vc + vb == 0:
        short = "no spread in either sample: a t test cannot tell them apart"
    result = Comparison(
        "mean", "Welch's t test", nc, nb, mc, mb, "difference", mc - mb,
        math.nan, math.nan, 0.0, confidence, None, short,
    )  # fmt: skip
    if short is not None:
        return result
    from scipy import stats

    se = math.sqrt(vc + vb)
    df = (vc + vb) ** 2 / (vc**2 / (nc - 1) + vb**2 / (nb - 1))
    t = (mc - mb) / se
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p_value = float(2 * stats.t.sf(abs(t), df))
    return _with(result, mc - mb - half, mc - mb + half, p_value)


def mann_whitney(
    candidate: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    min_samples: int = MIN_SAMPLES,
) -> Comparison:
    """Does the candidate tend to give larger values? The estimate is ``U / (n_c n_b)``, the
    probability that a candidate value exceeds a baseline one (ties count half; 0.5: no
    shift), with DeLong's variance for its interval; the p-value is the Mann–Whitney U test's
    normal approximation with tie and continuity corrections. Both sides show their median."""
    c, b = _finite(candidate), _finite(baseline)
    nc, nb = len(c), len(b)
    mc = float(np.median(c)) if nc else math.nan
    mb = float(np.median(b)) if nb else math.nan
    short = _too_few(nc, nb, max(min_samples, 2))
    result = Comparison(
        "median", "Mann-Whitney U test", nc, nb, mc, mb, "P(candidate > baseline)", math.nan,
        math.nan, math.nan, 0.5, confidence, None, short,
    )  # fmt: skip
    if short is not None:
        return result
    pooled = np.concatenate([c, b])
    _, counts = np.unique(pooled, return_counts=True)
    n = nc + nb
    ties = float(np.sum(counts.astype(float) ** 3 - counts))
    variance = nc * nb / 12 * ((n + 1) - ties / (n * (n - 1)))
    labels = np.r_[np.ones(nc), np.zeros(nb)]
    share, v10, v01 = auc_components(pooled, labels)
    if variance <= 0:
        why = "every value is the same: ranks cannot tell the samples apart"
        return _with(result, math.nan, math.nan, None, estimate=share, why=why)
    u = share * nc * nb
    z = max(abs(u - nc * nb / 2) - 0.5, 0.0) / math.sqrt(variance)
    p_value = min(1.0, math.erfc(z / math.sqrt(2)))
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(
        float(np.var(v10, ddof=1)) / nc + float(np.var(v01, ddof=1)) / nb
    )
    low, high = max(0.0, share - half), min(1.0, share + half)
    return _with(result, low, high, p_value, estimate=share)


# ---------------------------------------------------------------------------------- quantiles


def quantiles(
    candidate: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    q: float = 0.99,
    ratio: bool = True,
    confidence: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
    min_tail: int = MIN_TAIL,
) -> Comparison:
    """The ``q`` quantiles of two samples (latencies), compared as a ratio (or a difference),
    with a bootstrap percentile interval. The quantile is an order statistic (the
    ``ceil(q n)``-th smallest value), so a resample's quantile is drawn directly from its
    exact distribution (the k-th smallest of n draws is at most the j-th value when at least k
    of n binomial draws land at or below it): no resampled arrays, any n.

    Fewer than ``min_tail`` values beyond the quantile on either side is inconclusive: the p99
    of 300 requests is decided by its three slowest.
    """
    if not 0 < q < 1:
        raise ValueError(f"a quantile needs 0 < q < 1, not {q}")
    c, b = np.sort(_finite(candidate)), np.sort(_finite(baseline))
    name = f"p{round(q * 100, 6):g}"
    qc, qb = _order_statistic(c, q), _order_statistic(b, q)
    estimate = qc / qb if ratio and qb else math.nan if ratio else qc - qb
    short = next(
        (
            f"too few values in the {side} sample for a {name}: {n} ({tail} beyond it)"
            for side, n in (("candidate", len(c)), ("baseline", len(b)))
            if (tail := math.floor(min(q, 1 - q) * n)) < min_tail
        ),
        None,
    )
    if short is None and ratio and qb <= 0:
        short = f"the baseline's {name} is {qb:g}: no ratio"
    result = Comparison(
        name, f"bootstrap of the order statistic, {resamples} resamples", len(c), len(b), qc,
        qb, "ratio" if ratio else "difference", estimate, math.nan, math.nan,
        1.0 if ratio else 0.0, confidence, None, short,
    )  # fmt: skip
    if short is not None:
        return result
    rng = np.random.default_rng(seed)
    draws_c = _resampled_quantile(c, q, resamples, rng)
    draws_b = _resampled_quantile(b, q, resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        effects = draws_c / draws_b if ratio else draws_c - draws_b
    alpha = (1 - confidence) / 2
    low, high = np.quantile(effects, [alpha, 1 - alpha])
    return _with(result, float(low), float(high), None)


def _order_statistic(ordered: npt.NDArray[np.float64], q: float) -> float:
    if not len(ordered):
        return math.nan
    return float(ordered[max(math.ceil(q * len(ordered)), 1) - 1])


def _resampled_quantile(
    ordered: npt.NDArray[np.float64], q: float, resamples: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    from scipy import stats

    n = len(ordered)
    k = max(math.ceil(q * n), 1)
    # P(k-th smallest of n draws <= ordered[j-1]) = P(Binomial(n, j/n) >= k), for j = 1..n.
    cdf = stats.binom.sf(k - 1, n, np.arange(1, n + 1) / n)
    cdf[-1] = 1.0
    index = np.searchsorted(cdf, rng.random(resamples), side="left")
    return ordered[np.minimum(index, n - 1)]


# ------------------------------------------------------------------------------------ shared


def _finite(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _too_few(n_candidate: int, n_baseline: int, least: int) -> str | None:
    for side, n in (("candidate", n_candidate), ("baseline", n_baseline)):
        if n < least:
            return f"too few values in the {side} sample ({n} < {least})"
    return None


def _with(
    result: Comparison,
    low: float,
    high: float,
    p_value: float | None,
    *,
    estimate: float | None = None,
    why: str | None = None,
) -> Comparison:
    return replace(
        result, low=low, high=high, p_value=p_value, inconclusive=why,
        estimate=result.estimate if estimate is None else estimate,
    )  # fmt: skip
