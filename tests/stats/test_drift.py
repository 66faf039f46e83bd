from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.stats.drift import (
    DriftRules,
    categorical_drift,
    count_values,
    numeric_drift,
    psi,
    psi_bins,
)
from conveyor.stats.frames import compare


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_a_shifted_normal_drifts_and_the_same_one_does_not(rng: np.random.Generator) -> None:
    reference = rng.normal(0, 1, 2000)
    shifted = numeric_drift(reference, rng.normal(0.5, 1, 2000), column="x")
    assert shifted.verdict == "drifted" and shifted.drifted and shifted.kind == "numeric"
    s = shifted.statistics
    assert _f(s["psi"]) > 0.2 and _f(s["ks_statistic"]) > 0.15 and _f(s["ks_p_value"]) < 1e-20
    assert 0.4 < _f(s["wasserstein"]) < 0.6  # a shift of half a standard deviation
    assert shifted.reasons[0].startswith("ks p ") and any("psi" in r for r in shifted.reasons)
    same = numeric_drift(reference, rng.normal(0, 1, 2000))
    assert same.verdict == "stable" and same.reasons == ()
    assert _f(same.statistics["psi"]) < 0.05 and _f(same.statistics["ks_statistic"]) < 0.1


def test_a_trivial_shift_in_a_huge_sample_is_not_drift(rng: np.random.Generator) -> None:
    reference, current = rng.normal(0, 1, 200_000), rng.normal(0.03, 1, 200_000)
    result = numeric_drift(reference, current)
    assert _f(result.statistics["ks_p_value"]) < 0.01  # significant ...
    assert result.verdict == "stable"  # ... but too small to matter


def test_small_samples_are_inconclusive_and_psi_noise_alone_is_not_drift(
    rng: np.random.Generator,
) -> None:
    small = numeric_drift(rng.normal(0, 1, 20), rng.normal(3, 1, 500))
    assert small.verdict == "inconclusive" and not small.drifted
    assert small.reasons == ("too few values in the reference sample (20 < 30)",)
    assert small.statistics["psi"] is None
    # Two samples of 40 from one distribution: PSI is biased far above 0.2, the test is not.
    noisy = numeric_drift(rng.normal(0, 1, 40), rng.normal(0, 1, 40))
    assert _f(noisy.statistics["psi"]) > 0.2 and noisy.verdict == "stable"
    empty = numeric_drift([], [])
    assert empty.verdict == "inconclusive" and empty.statistics["null_fraction_current"] is None


def test_constant_columns() -> None:
    same = numeric_drift(np.full(100, 3.0), np.full(100, 3.0))
    assert same.verdict == "stable" and same.statistics["wasserstein"] is None
    assert same.statistics["psi"] == 0.0
    moved = numeric_drift(np.full(100, 3.0), np.r_[np.full(50, 3.0), np.full(50, 4.0)])
    assert moved.verdict == "drifted" and _f(moved.statistics["psi"]) > 1


def test_nulls_count_apart_and_their_share_can_drift(rng: np.random.Generator) -> None:
    values = rng.normal(0, 1, 1000)
    gappy = np.where(rng.random(1000) < 0.5, np.nan, rng.normal(0, 1, 1000))
    result = numeric_drift(values, gappy)
    assert result.verdict == "drifted" and result.reasons[0].startswith("missing values 0.0% ->")
    assert 400 < result.n_current < 600 and result.statistics["ks_p_value"] is not None
    all_null = numeric_drift(values, [None] * 1000)
    assert all_null.verdict == "drifted" and all_null.statistics["null_fraction_current"] == 1.0
    few_nulls = numeric_drift(values, np.r_[values[:990], [np.nan] * 10])
    assert few_nulls.verdict == "stable"  # 1% missing: under max_null_shift


def test_a_categorical_shift_and_unseen_categories(rng: np.random.Generator) -> None:
    reference = rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2])
    same = categorical_drift(reference, rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2]))
    assert same.verdict == "stable" and same.kind == "categorical"
    shifted = categorical_drift(reference, rng.choice(["a", "b", "c"], 3000, p=[0.2, 0.3, 0.5]))
    assert shifted.verdict == "drifted"
    assert (
        _f(shifted.statistics["js_distance"]) > 0.1
        and _f(shifted.statistics["chi2_p_value"]) < 1e-50
    )
    new = categorical_drift(reference, np.r_[reference[:2000], np.full(1000, "zz")])
    assert new.verdict == "drifted" and new.statistics["unseen_fraction"] == pytest.approx(1 / 3)
    assert "new values 'zz'" in new.reasons


def test_categorical_edges() -> None:
    one = categorical_drift(["a"] * 50, ["a"] * 50)
    assert one.verdict == "stable" and one.statistics["chi2_p_value"] == 1.0
    assert categorical_drift(["a"] * 50, ["a"] * 10).verdict == "inconclusive"
    assert count_values(["a", None, float("nan"), "a"]) == ({"a": 2}, 2)
    assert count_values(np.array([1.0, np.nan, 1.0])) == ({1.0: 2}, 1)
    # More categories than max_categories: the rare ones share one bucket.
    rules = DriftRules(max_categories=3)
    values = [f"v{i}" for i in range(10)] * 10
    assert categorical_drift(values, values, rules=rules).verdict == "stable"


def test_psi_formula_and_bins() -> None:
    assert psi([50, 50], [50, 50]) == 0.0
    expected = (0.6 - 0.5) * math.log(0.6 / 0.5) + (0.4 - 0.5) * math.log(0.4 / 0.5)
    assert psi([5, 5], [6, 4]) == pytest.approx(expected)
    assert psi([10, 0], [9, 1], epsilon=1e-4) == pytest.approx(
        (0.9 - 1) * math.log(0.9) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    )
    assert psi_bins(np.arange(100.0), 10).tolist() == pytest.approx(
        np.quantile(np.arange(100.0), np.linspace(0.1, 0.9, 9)).tolist()
    )
    assert psi_bins(np.full(10, 2.0), 10).tolist() == [2.0]


def _f(value: float | None) -> float:
    assert value is not None
    return value


def test_rules_refuse_nonsense_and_categorical_dtypes_work(rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match="p_value must be between 0 and 1, not 5"):
        DriftRules(p_value=5)
    cats = pd.Categorical(rng.choice(["a", "b"], 200), categories=["a", "b", "unused"])
    frame = pd.DataFrame({"c": cats})
    (result,) = compare(frame, frame)
    assert result.verdict == "stable" and result.n_reference == 200
