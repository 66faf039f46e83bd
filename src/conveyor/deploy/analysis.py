"""Rollout analysis: the candidate against the stable version on the same interval, one verdict
per check.

    analyse(env.analysis.checks, observations)   # -> [CheckResult, ...]
    overall(results)                             # -> "pass" | "fail" | "inconclusive"
    evaluate(env, observations)                  # what a controller calls: the strategy's own
                                                 # checks too (shadow agreement, the A/B verdict)

Each check compares side by side, never against an absolute number alone, and says
``inconclusive`` when the samples cannot tell: fewer than ``min_samples`` on either side, or an
interval that straddles the limit. Inconclusive is never a pass: the rollout waits for more
traffic (up to the analysis deadline).

    error_rate        errors / requests; the difference candidate - stable, with Newcombe's
                      interval (conveyor.stats.unpaired.two_proportions): pass when the whole
                      interval is at most max_increase, fail when the whole of it is above
    latency_p50/p99   the quantile of each side's latency histogram (Prometheus's
                      histogram_quantile); pass when candidate / stable <= max_ratio
    accuracy          correct / labelled from joined feedback; pass when the interval's lower
                      bound of candidate - stable is at least min_change, fail when its upper
                      bound is below it
    prediction_drift  PSI of the candidate's predictions against the stable's (numbers over the
                      stable's deciles, or class counts); pass when at most max_psi
    agreement         agreed / compared shadow copies; pass when Wilson's interval is all at
                      or above min, fail when all of it is below

Pure: plain values in, plain values out; statistics from :mod:`conveyor.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

from conveyor.deploy.config import Check, Environment, Strategy

if TYPE_CHECKING:
    from conveyor.stats.unpaired import Comparison

Verdict = Literal["pass", "fail", "inconclusive"]
Buckets = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Side:
    """One version's observations over the interval analysed."""

    requests: int = 0
    errors: int = 0  # 5xx answered by that version
    # (upper bound in seconds, count in that bucket, NOT cumulative); +inf last
    latency_buckets: Buckets = ()
    labelled: int = 0  # answers joined with feedback
    correct: int = 0
    predictions: tuple[float, ...] | dict[str, int] = ()  # numbers, or class -> count


@dataclass(frozen=True)
class Observations:
    stable: Side
    candidate: Side
    agreement: tuple[int, int] = (0, 0)  # (agreed, compared) shadow copies


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict with its inputs: both sides' values, the limit, the sample sizes
    (stable, candidate) and, for the statistical checks, the whole comparison."""

    metric: str
    verdict: Verdict
    stable: float | None
    candidate: float | None
    threshold: float
    samples: tuple[int, int]  # (stable, candidate)
    detail: str = ""  # the interval, the p-value, or why inconclusive
    comparison: dict[str, Any] | None = None  # Comparison.to_dict() where a test decided

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "verdict": self.verdict,
            "stable": _plain(self.stable),
            "candidate": _plain(self.candidate),
            "threshold": _plain(self.threshold),
            "samples": list(self.samples),
            "detail": self.detail,
        }
        if self.comparison is not None:
            out["comparison"] = self.comparison
        return out


def analyse(checks: Sequence[Check], obs: Observations) -> list[CheckResult]:
    """Each check's verdict on ``obs``, in the order of ``checks``."""
    return [_CHECKS[check.metric](check, obs) for check in checks]


def overall(results: Sequence[CheckResult]) -> Verdict:
    """Any fail -> fail; else any inconclusive -> inconclusive; else pass (no checks: pass)."""
    verdicts = {r.verdict for r in results}
    if "fail" in verdicts:
        return "fail"
    return "inconclusive" if "inconclusive" in verdicts else "pass"


def evaluate(env: Environment, obs: Observations) -> list[CheckResult]:
    """This tick's results for ``env``'s rollout: its analysis checks, plus what its strategy
    asks for (shadow: agreement at ``min_agreement`` unless a check names it; A/B: the verdict,
    metric ``"ab"``, see :func:`ab_result`)."""
    checks = list(env.analysis.checks)
    strategy = env.strategy
    if strategy.kind == "shadow" and not any(c.metric == "agreement" for c in checks):
        checks.append(Check("agreement", min=strategy.min_agreement))
    results = analyse(checks, obs)
    if strategy.kind == "ab":
        results.append(ab_result(strategy, obs))
    return results


# ------------------------------------------------------------------------------------ checks


def _error_rate(check: Check, obs: Observations) -> CheckResult:
    s, c = obs.stable, obs.candidate
    return _proportions(
        check, "error_rate", (s.errors, s.requests), (c.errors, c.requests), "requests",
        higher_is_better=False,
    )  # fmt: skip


def _accuracy(check: Check, obs: Observations) -> CheckResult:
    s, c = obs.stable, obs.candidate
    return _proportions(
        check, "accuracy", (s.correct, s.labelled), (c.correct, c.labelled), "labels",
        higher_is_better=True,
    )  # fmt: skip


def _proportions(
    check: Check,
    metric: str,
    stable: tuple[int, int],
    candidate: tuple[int, int],
    unit: str,
    *,
    higher_is_better: bool,
) -> CheckResult:
    from conveyor.stats.unpaired import judge, two_proportions

    (ks, ns), (kc, nc) = stable, candidate
    limit = check.threshold
    rates = (ks / ns if ns else None, kc / nc if nc else None)
    short = _too_few(ns, nc, check.min_samples, unit)
    if short is not None:
        return CheckResult(metric, "inconclusive", *rates, limit, (ns, nc), short)
    try:
        cmp = two_proportions(
            kc, nc, ks, ns, confidence=check.confidence, min_samples=check.min_samples
        )
    except ValueError as exc:  # more errors than requests: counters read across a reset
        return CheckResult(metric, "inconclusive", *rates, limit, (ns, nc), str(exc))
    judged = judge(cmp, limit=limit, higher_is_better=higher_is_better)
    verdict: Verdict = {"acceptable": "pass", "worse": "fail"}.get(judged, "inconclusive")  # type: ignore[assignment]
    name = "increase" if not higher_is_better else "change"
    bound = "at most" if not higher_is_better else "at least"
    detail = (
        f"{name} {cmp.estimate:+.4f}, {cmp.confidence:.0%} interval [{cmp.low:+.4f}, "
        f"{cmp.high:+.4f}], p={cmp.p_value:.3g}; must be {bound} {limit:+g}"
    )
    if verdict == "inconclusive":
        detail += ": the interval straddles the limit, more samples will tell"
    return CheckResult(metric, verdict, *rates, limit, (ns, nc), detail, cmp.to_dict())


def _latency(q: float) -> Callable[[Check, Observations], CheckResult]:
    name = f"latency_p{round(q * 100):d}"

    def check_latency(check: Check, obs: Observations) -> CheckResult:
        limit = check.threshold
        ns = round(sum(n for _, n in obs.stable.latency_buckets))
        nc = round(sum(n for _, n in obs.candidate.latency_buckets))
        qs = quantile(obs.stable.latency_buckets, q)
        qc = quantile(obs.candidate.latency_buckets, q)
        short = _too_few(ns, nc, check.min_samples, "requests")
        if short is None and (qs is None or qc is None):
            short = "a histogram without its +Inf bucket has no quantile"
        if short is not None:
            return CheckResult(name, "inconclusive", qs, qc, limit, (ns, nc), short)
        assert qs is not None and qc is not None
        if qs <= 0:
            if qc <= 0:
                return CheckResult(name, "pass", qs, qc, limit, (ns, nc), "both are 0")
            why = f"the stable's p{round(q * 100)} is 0 s: no ratio"
            return CheckResult(name, "inconclusive", qs, qc, limit, (ns, nc), why)
        ratio = qc / qs
        verdict: Verdict = "pass" if ratio <= limit else "fail"
        detail = (
            f"ratio {ratio:.3f} (candidate {qc * 1000:.2f} ms, stable {qs * 1000:.2f} ms); "
            f"must be at most {limit:g}"
        )
        return CheckResult(name, verdict, qs, qc, limit, (ns, nc), detail)

    return check_latency


def _prediction_drift(check: Check, obs: Observations) -> CheckResult:
    from conveyor.stats.drift import psi, psi_bins

    limit = check.threshold
    ref, cur = obs.stable.predictions, obs.candidate.predictions
    ns, nc = _count(ref), _count(cur)
    short = _too_few(ns, nc, check.min_samples, "predictions")
    if short is None and isinstance(ref, Mapping) != isinstance(cur, Mapping):
        short = "one side's predictions are classes, the other's numbers"
    if short is not None:
        return CheckResult("prediction_drift", "inconclusive", None, None, limit, (ns, nc), short)
    if isinstance(ref, Mapping) and isinstance(cur, Mapping):
        classes = sorted(set(ref) | set(cur), key=str)
        value = psi([ref.get(k, 0) for k in classes], [cur.get(k, 0) for k in classes])
        over = f"{len(classes)} classes"
    else:
        import numpy as np

        r = np.asarray(ref, dtype=np.float64)
        c = np.asarray(cur, dtype=np.float64)
        r, c = r[np.isfinite(r)], c[np.isfinite(c)]
        edges = psi_bins(r, 10)
        slots = len(edges) + 1
        # side="left": bins (-inf, e1], (e1, e2], ...; the same bins as conveyor.stats.drift
        counts_r = np.bincount(np.searchsorted(edges, r, side="left"), minlength=slots)
        counts_c = np.bincount(np.searchsorted(edges, c, side="left"), minlength=slots)
        value = psi(counts_r, counts_c)
        over = f"{slots} bins of the stable's deciles"
    verdict: Verdict = "pass" if value <= limit else "fail"
    detail = f"psi {value:.4f} over {over}; must be at most {limit:g}"
    return CheckResult("prediction_drift", verdict, None, value, limit, (ns, nc), detail)


def _agreement(check: Check, obs: Observations) -> CheckResult:
    from conveyor.stats.unpaired import wilson

    agreed, compared = obs.agreement
    limit = check.threshold
    rate = agreed / compared if compared else None
    if compared < check.min_samples:
        why = f"too few shadow copies compared: {compared} (need {check.min_samples})"
        return CheckResult(
            "agreement", "inconclusive", None, rate, limit, (compared, compared), why
        )
    assert rate is not None
    low, high = wilson(min(agreed, compared), compared, _z(check.confidence))
    verdict: Verdict = "pass" if low >= limit else "fail" if high < limit else "inconclusive"
    detail = (
        f"{agreed} of {compared} agree ({rate:.2%}), {check.confidence:.0%} interval "
        f"[{low:.4f}, {high:.4f}]; must be at least {limit:g}"
    )
    return CheckResult("agreement", verdict, None, rate, limit, (compared, compared), detail)


_CHECKS: dict[str, Callable[[Check, Observations], CheckResult]] = {
    "error_rate": _error_rate,
    "latency_p50": _latency(0.5),
    "latency_p99": _latency(0.99),
    "accuracy": _accuracy,
    "prediction_drift": _prediction_drift,
    "agreement": _agreement,
}


# ---------------------------------------------------------------------------------------- A/B


def ab_verdict(strategy: Strategy, obs: Observations) -> Comparison:
    """The A/B test's comparison of the candidate with the stable version on
    ``strategy.metric`` (accuracy: correct of labelled; error_rate: errors of requests), at
    ``strategy.confidence``; inconclusive until both sides have ``strategy.min_samples``."""
    from conveyor.stats.unpaired import two_proportions

    s, c = obs.stable, obs.candidate
    if strategy.metric == "error_rate":
        counts = (c.errors, c.requests, s.errors, s.requests)
    else:
        counts = (c.correct, c.labelled, s.correct, s.labelled)
    return two_proportions(
        *counts, confidence=strategy.confidence, min_samples=strategy.min_samples
    )


def ab_result(strategy: Strategy, obs: Observations) -> CheckResult:
    """The A/B verdict as a result named ``"ab"``: ``pass`` when the candidate is
    significantly better, ``fail`` when the samples are in and it is not (worse, or no
    difference the test can see), ``inconclusive`` until then. Its ``comparison`` is the
    verdict stored with the rollout."""
    cmp = ab_verdict(strategy, obs)
    lower_is_better = strategy.metric == "error_rate"
    samples = (cmp.n_baseline, cmp.n_candidate)
    values = (_plain(cmp.baseline), _plain(cmp.candidate))
    if not cmp.conclusive:
        why = cmp.inconclusive or "no interval"
        return CheckResult("ab", "inconclusive", *values, 0.0, samples, why, cmp.to_dict())
    better = cmp.high < 0 if lower_is_better else cmp.low > 0
    worse = cmp.low > 0 if lower_is_better else cmp.high < 0
    said = "better" if better else "worse" if worse else "no different (no significant difference)"
    detail = (
        f"{strategy.metric}: candidate {said}: difference {cmp.estimate:+.4f}, "
        f"{cmp.confidence:.0%} interval [{cmp.low:+.4f}, {cmp.high:+.4f}], p={cmp.p_value:.3g}"
    )
    verdict: Verdict = "pass" if better else "fail"
    return CheckResult("ab", verdict, *values, 0.0, samples, detail, cmp.to_dict())


# ------------------------------------------------------------------------------------ shared


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile of a histogram the way Prometheus's ``histogram_quantile`` computes
    it: linear interpolation inside the bucket the rank falls in (the lowest bucket starts at
    0 when its bound is positive); a rank in the +Inf bucket gives the highest finite bound.
    ``buckets`` are (upper bound, count in that bucket), not cumulative; None when there are no
    observations, fewer than two buckets or no +Inf bucket (Prometheus's NaN).

    >>> quantile([(0.1, 50), (0.2, 50), (math.inf, 0)], 0.75)
    0.15
    """
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[float(bound)] = merged.get(float(bound), 0.0) + float(count)
    bounds = sorted(merged)
    if len(bounds) < 2 or bounds[-1] != math.inf:
        return None
    cumulative: list[float] = []
    total = 0.0
    for bound in bounds:
        total += merged[bound]
        cumulative.append(total)
    if total <= 0:
        return None
    rank = q * total
    b = next((i for i in range(len(bounds) - 1) if cumulative[i] >= rank), len(bounds) - 1)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start = 0.0 if b == 0 else bounds[b - 1]
    before = 0.0 if b == 0 else cumulative[b - 1]
    count = cumulative[b] - before
    if count <= 0:
        return start
    return start + (bounds[b] - start) * ((rank - before) / count)


def _too_few(n_stable: int, n_candidate: int, least: int, unit: str) -> str | None:
    if min(n_stable, n_candidate) >= least:
        return None
    return f"too few {unit}: stable {n_stable}, candidate {n_candidate} (need {least} on each side)"


def _count(predictions: tuple[float, ...] | Mapping[str, int]) -> int:
    if isinstance(predictions, Mapping):
        return int(sum(predictions.values()))
    return len(predictions)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _plain(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
