from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from conveyor.foundation.errors import ConfigError
from conveyor.monitor.profiles import profile, reference
from conveyor.stats.binned import BinsMismatch, dataset, drift, method_for, share
from conveyor.stats.drift import ColumnDrift, categorical_drift, numeric_drift

Sampler = Callable[[np.random.Generator, int], np.ndarray]
SHAPES: dict[str, Sampler] = {
    "normal": lambda rng, n: rng.normal(10, 2, n),
    "lognormal": lambda rng, n: rng.lognormal(0, 1, n),
    "uniform": lambda rng, n: rng.uniform(-1, 1, n),
}


def one(ref: object, cur: object, **options: object) -> ColumnDrift:
    bins, ref_profile = reference({"f": ref})
    return drift(bins, ref_profile, profile({"f": cur}, bins), **options)[0]  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.3, 1.0])
def test_numeric_statistics_are_close_to_the_raw_samples(shape: str, shift: float) -> None:
    rng = np.random.default_rng(11)
    a = SHAPES[shape](rng, 20_000)
    b = SHAPES[shape](rng, 20_000) + shift * a.std()
    got = one(a, b).statistics
    raw = numeric_drift(a, b).statistics
    assert abs(got["ks_statistic"] - raw["ks_statistic"]) <= 0.02  # type: ignore[operator]
    exact_w = stats.wasserstein_distance(a, b) / a.std()
    assert got["wasserstein"] == pytest.approx(exact_w, rel=0.05, abs=0.01)
    assert got["psi"] == pytest.approx(raw["psi"], rel=1e-6, abs=1e-9)  # same decile bins


def test_categorical_statistics_equal_the_raw_ones() -> None:
    rng = np.random.default_rng(12)
    cities = ["paris", "oslo", "rome", "lima", "kyiv", "quito"]
    a = rng.choice(cities, 3000, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1])
    b = rng.choice(cities, 2000, p=[0.2, 0.2, 0.2, 0.2, 0.1, 0.1])
    got = one(a, b).statistics
    raw = categorical_drift(a, b).statistics
    assert got["psi"] == pytest.approx(raw["psi"], rel=1e-12)
    assert got["js_distance"] == pytest.approx(raw["js_distance"], rel=1e-9)
    table = [[int((a == c).sum()) for c in cities], [int((b == c).sum()) for c in cities]]
    assert got["chi2_p_value"] == pytest.approx(stats.chi2_contingency(table).pvalue, rel=1e-9)


def test_a_clear_shift_is_named_with_its_effect_size() -> None:
    rng = np.random.default_rng(13)
    shifted = one(rng.normal(0, 1, 5000), rng.normal(0.5, 1, 5000))
    assert shifted.verdict == "drifted"
    assert shifted.reasons[0].startswith("wasserstein 0.4") and ">= 0.1" in shifted.reasons[0]
    small = one(rng.normal(0, 1, 500), rng.normal(0.5, 1, 500))  # small reference: KS
    assert small.verdict == "drifted" and small.reasons[0].startswith("ks p ")
    assert any(r.startswith("ks statistic 0.") for r in small.reasons)
    cats = one(rng.choice(list("abc"), 5000), rng.choice(list("abc"), 5000, p=[0.6, 0.2, 0.2]))
    assert cats.drifted and cats.reasons[0].startswith("js distance 0.")


@pytest.mark.parametrize("n", [300, 5000])
def test_verdicts_match_the_raw_statistics_on_clear_shifts_and_on_none(n: int) -> None:
    rng = np.random.default_rng(14)
    for seed_shift in (0.0, 0.8):
        a, b = rng.normal(0, 1, n), rng.normal(seed_shift, 1, n)
        got = one(a, b, effect_floor=0.0)
        if n <= 1000:
            raw_drifted = stats.ks_2samp(a, b).pvalue < 0.05
        else:
            raw_drifted = stats.wasserstein_distance(a, b) / a.std() >= 0.1
        assert got.drifted == raw_drifted == (seed_shift > 0)


@pytest.mark.parametrize(
    ("method", "sample"),
    [
        ("ks", lambda rng: rng.normal(0, 1, 300)),
        ("chisquare", lambda rng: rng.choice(list("abcde"), 300, p=[0.4, 0.3, 0.1, 0.1, 0.1])),
    ],
)
def test_p_value_tests_raise_false_alarms_at_their_level(
    method: str, sample: Callable[[np.random.Generator], np.ndarray]
) -> None:
    rng = np.random.default_rng(15)
    alarms = 0
    for _ in range(200):
        alarms += one(sample(rng), sample(rng), method=method, effect_floor=0.0).drifted
    # 5 % expected; binned KS is a little conservative (edges are a subset of the points)
    assert 2 <= alarms <= 18


def test_the_effect_floor_keeps_a_big_sample_from_flagging_a_trivial_shift() -> None:
    rng = np.random.default_rng(16)
    a, b = rng.normal(0, 1, 200_000), rng.normal(0.03, 1, 200_000)
    assert one(a, b, method="ks", effect_floor=0.0).drifted  # p tiny
    kept = one(a, b, method="ks")
    assert kept.verdict == "stable" and kept.statistics["ks_p_value"] < 1e-6  # type: ignore[operator]


def test_auto_chooses_as_evidently_does_by_reference_size() -> None:
    rng = np.random.default_rng(17)
    for n, numeric, categorical, binary in [
        (1000, "ks", "chisquare", "z"),
        (1001, "wasserstein", "jensenshannon", "jensenshannon"),
    ]:
        data = {
            "x": rng.normal(size=n),
            "c": rng.choice(list("abc"), n),
            "b": rng.random(n) < 0.5,
        }
        bins, ref = reference(data)
        got = dataset(bins, ref, profile(data, bins)).methods
        assert got == {"x": numeric, "c": categorical, "b": binary}
        assert method_for("x", bins.features["x"], ref.features["x"], "psi") == "psi"
        assert method_for("c", bins.features["c"], ref.features["c"], "ks") == categorical


def test_evidently_s_jensen_shannon_threshold_is_0_1_in_natural_log_units() -> None:
    rng = np.random.default_rng(18)
    a = rng.choice(list("abcd"), 20_000)
    # 0.37: about 0.09 in natural-log units, 0.11 in base 2: not drift by Evidently's rule
    for p_first, expected in ((0.41, True), (0.37, False)):
        rest = (1 - p_first) / 3
        b = rng.choice(list("abcd"), 20_000, p=[p_first, rest, rest, rest])
        got = one(a, b)
        pa = np.array([(a == c).mean() for c in "abcd"])
        pb = np.array([(b == c).mean() for c in "abcd"])
        assert got.drifted == (distance.jensenshannon(pa, pb) >= 0.1) == expected
        assert got.statistics["js_distance"] == pytest.approx(
            distance.jensenshannon(pa, pb, base=2), rel=1e-9
        )


def test_missing_values_moving_is_drift_and_too_few_values_is_inconclusive() -> None:
    rng = np.random.default_rng(19)
    values = rng.normal(size=2000)
    holes: list[object] = values.tolist()
    holes[::3] = [None] * len(holes[::3])
    moved = one(values, holes)
    assert moved.drifted and any(
        r.startswith("missing values 0.0% -> 33.4%") for r in moved.reasons
    )
    short = one(values, values[:20])
    assert short.verdict == "inconclusive" and "too few values" in short.reasons[0]
    text: list[object] = values.tolist()
    text[::4] = ["oops"] * len(text[::4])  # type violations count as missing too
    assert one(values, text).statistics["invalid_fraction_current"] == 0.25


def test_thresholds_and_methods_can_be_set() -> None:
    rng = np.random.default_rng(20)
    a, b = rng.normal(0, 1, 5000), rng.normal(0.5, 1, 5000)
    assert one(a, b).drifted and not one(a, b, threshold=1.0).drifted
    assert one(a, b, method="psi").reasons[0].startswith("psi ")
    assert one(a, b, method="jensenshannon").reasons[0].startswith("js distance ")
    with pytest.raises(ConfigError) as caught:
        one(a, b, method="wasserstien")
    assert caught.value.hint and "wasserstein" in caught.value.hint
    with pytest.raises(ConfigError, match="does not apply"):
        one(a, b, method={"f": "chisquare"})
    with pytest.raises(ConfigError, match="unknown feature"):
        one(a, b, method={"g": "ks"})
    with pytest.raises(ConfigError, match="p_value must be between 0 and 1"):
        one(a, b, p_value=5)


def test_unseen_categories_are_counted_and_the_dataset_verdict_follows_the_share() -> None:
    rng = np.random.default_rng(21)
    ref = {f"x{i}": rng.normal(size=3000) for i in range(3)} | {"c": rng.choice(list("ab"), 3000)}
    cur = {f"x{i}": rng.normal(0.6 if i else 0, 1, 3000) for i in range(3)}
    cur["c"] = rng.choice(list("abz"), 3000)
    bins, ref_profile = reference(ref)
    result = dataset(bins, ref_profile, profile(cur, bins))
    verdicts = {c.column: c.verdict for c in result.columns}
    assert verdicts == {"x0": "stable", "x1": "drifted", "x2": "drifted", "c": "drifted"}
    assert result.share == share(result.columns) == 0.75 and result.drifted
    unseen = next(c for c in result.columns if c.column == "c").statistics["unseen_fraction"]
    assert unseen == pytest.approx(1 / 3, abs=0.03)
    assert not dataset(bins, ref_profile, profile(cur, bins), drift_share=0.8).drifted


def test_profiles_on_other_bins_are_not_compared() -> None:
    bins, ref = reference({"x": np.arange(100.0)})
    other_bins, other = reference({"x": np.arange(50.0)})
    with pytest.raises(BinsMismatch, match="different bins"):
        drift(bins, ref, other)
    assert math.isfinite(drift(other_bins, other, other)[0].statistics["wasserstein"])  # type: ignore[arg-type]


def test_importing_binned_loads_numpy_only() -> None:
    code = (
        "import sys\nimport conveyor.stats.binned\n"
        "print(sorted({'numpy', 'pandas', 'scipy'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['numpy']"
