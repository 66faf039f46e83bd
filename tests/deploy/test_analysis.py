"""Rollout analysis: each check against values computed by hand, and too little data is
inconclusive, never a pass."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from conveyor.deploy.analysis import (
    CheckResult,
    Observations,
    Side,
    ab_result,
    ab_verdict,
    analyse,
    evaluate,
    overall,
    quantile,
)
from conveyor.deploy.config import Analysis, Check, Environment, Strategy

INF = math.inf


def wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def newcombe(kc: int, nc: int, ks: int, ns: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of pc - ps, written out from the 1998 paper."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    pc, ps = kc / nc, ks / ns
    lc, uc = wilson(kc, nc, z)
    ls, us = wilson(ks, ns, z)
    d = pc - ps
    return d - math.sqrt((pc - lc) ** 2 + (us - ps) ** 2), d + math.sqrt(
        (uc - pc) ** 2 + (ps - ls) ** 2
    )


def one(check: Check, obs: Observations) -> CheckResult:
    (result,) = analyse([check], obs)
    return result


def sides(stable: Side, candidate: Side, agreement: tuple[int, int] = (0, 0)) -> Observations:
    return Observations(stable, candidate, agreement)


# --------------------------------------------------------------------------------- error rate


ERRORS = Check("error_rate", max_increase=0.01)


def test_a_candidate_with_as_few_errors_passes_with_the_interval_in_the_detail() -> None:
    result = one(ERRORS, sides(Side(requests=4000, errors=20), Side(requests=4000, errors=16)))
    low, high = newcombe(16, 4000, 20, 4000)
    assert high <= 0.01  # the whole interval is within the allowed increase
    assert result.verdict == "pass"
    assert (result.stable, result.candidate) == (0.005, 0.004)
    assert result.threshold == 0.01 and result.samples == (4000, 4000)
    assert result.comparison is not None
    assert result.comparison["low"] == pytest.approx(low)
    assert result.comparison["high"] == pytest.approx(high)
    assert f"[{low:+.4f}, {high:+.4f}]" in result.detail


def test_a_candidate_failing_one_request_in_five_fails_at_once() -> None:
    result = one(ERRORS, sides(Side(requests=900, errors=0), Side(requests=100, errors=20)))
    low, _ = newcombe(20, 100, 0, 900)
    assert low > 0.01
    assert result.verdict == "fail"
    assert result.candidate == 0.2 and result.stable == 0.0


def test_an_increase_the_samples_cannot_place_is_inconclusive() -> None:
    # 3 % against 0 % over 100 requests: above the limit, but not significantly
    result = one(ERRORS, sides(Side(requests=900, errors=0), Side(requests=100, errors=3)))
    low, high = newcombe(3, 100, 0, 900)
    assert low <= 0.01 < high
    assert result.verdict == "inconclusive"
    assert "straddles" in result.detail


@pytest.mark.parametrize("candidate_requests", [0, 1, 99])
def test_too_few_requests_is_inconclusive_even_without_errors(candidate_requests: int) -> None:
    result = one(ERRORS, sides(Side(requests=5000), Side(requests=candidate_requests)))
    assert result.verdict == "inconclusive"
    assert result.samples == (5000, candidate_requests)
    assert result.detail == (
        f"too few requests: stable 5000, candidate {candidate_requests} (need 100 on each side)"
    )


def test_counts_read_across_a_counter_reset_are_inconclusive() -> None:
    result = one(ERRORS, sides(Side(requests=500, errors=600), Side(requests=500)))
    assert result.verdict == "inconclusive"


# ---------------------------------------------------------------------------------- quantiles


def test_the_quantile_interpolates_inside_its_bucket() -> None:
    buckets = ((0.005, 900), (0.01, 80), (0.025, 20), (INF, 0))
    # rank 990 of 1000 falls in (0.01, 0.025], 10 of its 20 in: half way
    assert quantile(buckets, 0.99) == pytest.approx(0.0175)
    # rank 500 falls in the first bucket, which starts at 0: 500 of 900 of 0.005
    assert quantile(buckets, 0.5) == pytest.approx(0.005 * 500 / 900)


def test_prometheus_edge_cases() -> None:
    # a rank in the +Inf bucket: the highest finite bound
    assert quantile(((0.1, 1), (0.2, 1), (INF, 8)), 0.99) == 0.2
    # bounds unsorted and repeated are merged, like Prometheus's coalesceBuckets
    assert quantile(((INF, 0), (0.2, 50), (0.1, 25), (0.1, 25)), 0.75) == pytest.approx(0.15)
    # a first bucket at or below 0 answers its bound
    assert quantile(((0.0, 10), (1.0, 0), (INF, 0)), 0.5) == 0.0
    # no +Inf bucket, a single bucket, no observations: no quantile (Prometheus's NaN)
    assert quantile(((0.1, 5), (0.2, 5)), 0.5) is None
    assert quantile(((INF, 5),), 0.5) is None
    assert quantile(((0.1, 0), (INF, 0)), 0.5) is None
    assert quantile((), 0.5) is None
    assert quantile(((0.1, 5), (INF, 0)), -0.1) == -INF
    assert quantile(((0.1, 5), (INF, 0)), 1.1) == INF


def histogram(values: np.ndarray, bounds: tuple[float, ...]) -> tuple[tuple[float, float], ...]:
    edges = np.array(bounds)
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(bounds) + 1)
    return tuple(zip((*bounds, INF), (float(c) for c in counts), strict=True))


def test_the_quantile_of_a_histogram_is_close_to_the_samples_own() -> None:
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(mean=-4.5, sigma=0.5, size=20_000)  # about 11 ms
    bounds = tuple(np.round(np.linspace(0.001, 0.1, 100), 6))  # 1 ms buckets
    buckets = histogram(latencies, bounds)
    for q in (0.5, 0.9, 0.99):
        exact = float(np.quantile(latencies, q))
        assert quantile(buckets, q) == pytest.approx(exact, abs=0.001)  # within a bucket


LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


def test_a_candidate_50_ms_slower_fails_the_p99_ratio() -> None:
    rng = np.random.default_rng(1)
    stable = rng.uniform(0.002, 0.008, 2000)
    slow = stable[:500] + 0.05
    result = one(
        Check("latency_p99", max_ratio=1.25),
        sides(Side(latency_buckets=histogram(stable, LATENCY_BOUNDS)),
              Side(latency_buckets=histogram(slow, LATENCY_BOUNDS))),
    )  # fmt: skip
    assert result.verdict == "fail"
    assert result.samples == (2000, 500)
    assert result.stable == pytest.approx(quantile(histogram(stable, LATENCY_BOUNDS), 0.99))
    assert result.candidate is not None and result.stable is not None
    assert result.candidate / result.stable > 5
    assert result.detail.startswith("ratio ")


def test_an_equally_fast_candidate_passes_p50_and_p99() -> None:
    rng = np.random.default_rng(2)
    stable = histogram(rng.uniform(0.002, 0.008, 2000), LATENCY_BOUNDS)
    candidate = histogram(rng.uniform(0.002, 0.008, 300), LATENCY_BOUNDS)
    obs = sides(Side(latency_buckets=stable), Side(latency_buckets=candidate))
    results = analyse(
        [Check("latency_p50", max_ratio=1.25), Check("latency_p99", max_ratio=1.25)], obs
    )
    assert [(r.metric, r.verdict) for r in results] == [
        ("latency_p50", "pass"),
        ("latency_p99", "pass"),
    ]


def test_latency_with_too_few_requests_or_a_zero_baseline() -> None:
    check = Check("latency_p99", max_ratio=1.25)
    few = sides(Side(latency_buckets=((0.01, 500), (INF, 0))),
                Side(latency_buckets=((0.01, 50), (INF, 0))))  # fmt: skip
    assert one(check, few).verdict == "inconclusive"
    assert "too few requests" in one(check, few).detail
    zero = ((0.0, 200), (0.01, 0), (INF, 0))
    assert one(check, sides(Side(latency_buckets=zero), Side(latency_buckets=zero))).verdict == (
        "pass"
    )
    slow = ((0.0, 100), (0.01, 100), (INF, 0))
    result = one(check, sides(Side(latency_buckets=zero), Side(latency_buckets=slow)))
    assert result.verdict == "inconclusive" and "no ratio" in result.detail
    no_inf = ((0.01, 200), (0.02, 0))
    assert one(
        check, sides(Side(latency_buckets=no_inf), Side(latency_buckets=no_inf))
    ).verdict == ("inconclusive")


# ----------------------------------------------------------------------------------- accuracy


ACCURACY = Check("accuracy", min_change=-0.02, min_samples=200)


def test_five_points_worse_fails_once_enough_labels_arrived_and_not_before() -> None:
    def at(n: int) -> CheckResult:
        return one(
            ACCURACY,
            sides(
                Side(labelled=n, correct=round(0.90 * n)), Side(labelled=n, correct=round(0.85 * n))
            ),
        )

    assert at(150).verdict == "inconclusive"  # below min_samples
    assert "too few labels" in at(150).detail
    low, high = newcombe(round(0.85 * 300), 300, round(0.90 * 300), 300)
    assert low < -0.02 < high
    assert at(300).verdict == "inconclusive"  # the interval still reaches the limit
    low, high = newcombe(1700, 2000, 1800, 2000)
    assert high < -0.02
    result = at(2000)
    assert result.verdict == "fail"
    assert (result.stable, result.candidate) == (0.9, 0.85)
    assert result.comparison is not None
    assert (result.comparison["low"], result.comparison["high"]) == pytest.approx((low, high))


def test_an_equal_candidate_passes_only_when_the_interval_clears_the_limit() -> None:
    def at(n: int) -> CheckResult:
        return one(ACCURACY, sides(Side(labelled=n, correct=round(0.9 * n)),
                                   Side(labelled=n, correct=round(0.9 * n))))  # fmt: skip

    low, _ = newcombe(180, 200, 180, 200)
    assert low < -0.02
    assert at(200).verdict == "inconclusive"  # not yet shown to be no worse
    low, _ = newcombe(2700, 3000, 2700, 3000)
    assert low >= -0.02
    assert at(3000).verdict == "pass"


# ---------------------------------------------------------------------------- prediction drift


def test_psi_of_class_counts_by_hand() -> None:
    check = Check("prediction_drift", max_psi=0.2, min_samples=50)
    moved = sides(Side(predictions={"a": 50, "b": 50}), Side(predictions={"a": 80, "b": 20}))
    result = one(check, moved)
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert result.candidate == pytest.approx(expected)  # 0.416
    assert result.verdict == "fail" and result.samples == (100, 100)
    same = sides(Side(predictions={"a": 50, "b": 50}), Side(predictions={"b": 49, "a": 51}))
    assert one(check, same).verdict == "pass"


def test_a_class_the_stable_never_predicted_counts_with_a_floor() -> None:
    check = Check("prediction_drift", max_psi=0.2, min_samples=10)
    result = one(check, sides(Side(predictions={"a": 100}), Side(predictions={"a": 90, "c": 10})))
    # shares a: 1.0 -> 0.9; c: 1e-4 (the floor) -> 0.1
    expected = (0.9 - 1.0) * math.log(0.9 / 1.0) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert result.candidate == pytest.approx(expected)
    assert result.verdict == "fail"


def test_psi_of_numbers_over_the_stable_deciles() -> None:
    rng = np.random.default_rng(3)
    stable = tuple(rng.normal(0, 1, 2000))
    check = Check("prediction_drift", max_psi=0.2)
    alike = one(
        check, sides(Side(predictions=stable), Side(predictions=tuple(rng.normal(0, 1, 500))))
    )
    assert alike.verdict == "pass" and alike.candidate is not None and alike.candidate < 0.1
    moved = one(
        check, sides(Side(predictions=stable), Side(predictions=tuple(rng.normal(1, 1, 500))))
    )
    assert moved.verdict == "fail" and moved.candidate is not None and moved.candidate > 0.2
    # by hand: every candidate value above the stable's top decile: 10 % -> 100 % there
    high = one(check, sides(Side(predictions=stable), Side(predictions=(100.0,) * 200)))
    floor = 1e-4
    expected = 9 * (floor - 0.1) * math.log(floor / 0.1) + (1 - 0.1) * math.log(1 / 0.1)
    assert high.candidate == pytest.approx(expected, rel=0.01)


def test_drift_needs_samples_of_one_kind() -> None:
    check = Check("prediction_drift", max_psi=0.2, min_samples=10)
    assert one(
        check, sides(Side(predictions=(1.0,) * 5), Side(predictions=(1.0,) * 50))
    ).verdict == ("inconclusive")
    mixed = one(check, sides(Side(predictions={"a": 50}), Side(predictions=(1.0,) * 50)))
    assert mixed.verdict == "inconclusive" and "classes" in mixed.detail


# ---------------------------------------------------------------------------------- agreement


@pytest.mark.parametrize(
    ("agreed", "compared", "verdict"),
    [(990, 1000, "pass"), (900, 1000, "fail"), (96, 100, "inconclusive"), (50, 50, "inconclusive")],
)
def test_agreement_with_wilsons_interval(agreed: int, compared: int, verdict: str) -> None:
    result = one(Check("agreement", min=0.95), sides(Side(), Side(), (agreed, compared)))
    assert result.verdict == verdict
    assert result.candidate == agreed / compared and result.samples == (compared, compared)
    if compared >= 100:
        low, high = wilson(agreed, compared, NormalDist().inv_cdf(0.975))
        assert f"[{low:.4f}, {high:.4f}]" in result.detail
        assert verdict == ("pass" if low >= 0.95 else "fail" if high < 0.95 else "inconclusive")


# ------------------------------------------------------------------------------------ overall


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ((), "pass"),
        (("pass", "pass"), "pass"),
        (("pass", "inconclusive"), "inconclusive"),
        (("inconclusive", "fail"), "fail"),
        (("fail", "pass"), "fail"),
    ],
)
def test_overall(verdicts: tuple[str, ...], expected: str) -> None:
    results = [CheckResult("error_rate", v, None, None, 0.0, (0, 0)) for v in verdicts]  # type: ignore[arg-type]
    assert overall(results) == expected


def test_results_are_plain_json() -> None:
    obs = sides(Side(requests=10), Side(requests=10))
    for result in analyse([ERRORS, Check("latency_p99", max_ratio=2), ACCURACY], obs):
        assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["metric"] == result.metric


# ---------------------------------------------------------------------------------------- A/B


AB = Strategy("ab", metric="accuracy", confidence=0.95, min_samples=1000)


def test_ab_detects_a_three_point_difference_at_the_planned_sample_size() -> None:
    obs = sides(Side(labelled=3000, correct=2400), Side(labelled=3000, correct=2490))  # .80 .83
    cmp = ab_verdict(AB, obs)
    low, high = newcombe(2490, 3000, 2400, 3000)
    assert (cmp.low, cmp.high) == pytest.approx((low, high)) and low > 0
    result = ab_result(AB, obs)
    assert result.verdict == "pass" and result.metric == "ab"
    assert "candidate better" in result.detail
    assert result.comparison == cmp.to_dict()


def test_ab_with_equal_models_is_no_difference_and_before_its_samples_inconclusive() -> None:
    equal = sides(Side(labelled=3000, correct=2400), Side(labelled=3000, correct=2400))
    result = ab_result(AB, equal)
    assert result.verdict == "fail" and "no significant difference" in result.detail
    early = sides(Side(labelled=999, correct=800), Side(labelled=999, correct=900))
    assert ab_result(AB, early).verdict == "inconclusive"
    worse = sides(Side(labelled=3000, correct=2490), Side(labelled=3000, correct=2400))
    assert "candidate worse" in ab_result(AB, worse).detail


def test_ab_on_error_rate_counts_fewer_errors_as_better() -> None:
    strategy = Strategy("ab", metric="error_rate", min_samples=1000)
    obs = sides(Side(requests=5000, errors=250), Side(requests=5000, errors=100))
    assert ab_result(strategy, obs).verdict == "pass"


def test_evaluate_adds_the_strategys_own_checks() -> None:
    obs = sides(Side(requests=1000), Side(requests=1000), (1000, 1000))
    shadow = Environment("prod", "clf", strategy=Strategy("shadow", min_agreement=0.9))
    metrics = [r.metric for r in evaluate(shadow, obs)]
    assert metrics == ["error_rate", "latency_p99", "agreement"]
    (agreement,) = [r for r in evaluate(shadow, obs) if r.metric == "agreement"]
    assert agreement.threshold == 0.9
    explicit = Environment(
        "prod", "clf", strategy=Strategy("shadow"),
        analysis=Analysis(checks=(Check("agreement", min=0.5),)),
    )  # fmt: skip
    assert [(r.metric, r.threshold) for r in evaluate(explicit, obs)] == [("agreement", 0.5)]
    ab = Environment("prod", "clf", strategy=AB)
    assert [r.metric for r in evaluate(ab, obs)] == ["error_rate", "latency_p99", "ab"]
    canary = Environment("prod", "clf")
    assert [r.metric for r in evaluate(canary, obs)] == ["error_rate", "latency_p99"]
