from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.foundation.errors import ConfigError, ConveyorError, DataError
from conveyor.monitor.profiles import (
    Bins,
    BinsMismatch,
    CategoricalSummary,
    NumericSummary,
    Profile,
    merge,
    profile,
    reference,
)


def frame(n: int, seed: int, *, integers: bool = False) -> dict[str, list[object]]:
    """A window as decoded from JSON: numbers with gaps and text in them, and categories."""
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 10, n)
    x = np.round(x) if integers else x
    xs: list[object] = x.tolist()
    for i in rng.choice(n, size=n // 10, replace=False):
        xs[i] = [None, float("nan"), "oops", math.inf][i % 4]
    city: list[object] = rng.choice(["paris", "oslo", "rome", "lima", None], n).tolist()
    return {"x": xs, "city": city}


@pytest.fixture(scope="module")
def bins() -> Bins:
    made, _ = reference(frame(2000, 0, integers=True))  # edges and centre: multiples of 1/2
    return made


def test_merging_windows_equals_profiling_their_rows_together(bins: Bins) -> None:
    rng = np.random.default_rng(1)
    for seed in range(20):
        rows = frame(int(rng.integers(1, 400)), seed, integers=True)
        n = len(rows["x"])
        cuts = sorted(rng.integers(0, n + 1, size=int(rng.integers(1, 5))).tolist())
        bounds = [0, *cuts, n]
        windows = [{k: v[a:b] for k, v in rows.items()} for a, b in itertools.pairwise(bounds)]
        # integer values: every sum is exact, so the merged profile is equal, not just close
        assert merge(profile(w, bins) for w in windows) == profile(rows, bins)


def test_merging_is_exact_up_to_float_rounding_for_any_numbers(bins: Bins) -> None:
    rows = frame(3000, 2)
    halves = [{k: v[:1234] for k, v in rows.items()}, {k: v[1234:] for k, v in rows.items()}]
    merged, whole = merge(profile(h, bins) for h in halves), profile(rows, bins)
    a, b = merged.features["x"], whole.features["x"]
    assert isinstance(a, NumericSummary) and isinstance(b, NumericSummary)
    assert (a.count, a.nulls, a.invalid, a.counts, a.min, a.max) == (
        b.count,
        b.nulls,
        b.invalid,
        b.counts,
        b.min,
        b.max,
    )
    for name in ("sum", "squares", "low_sum", "high_sum"):
        assert math.isclose(getattr(a, name), getattr(b, name), rel_tol=1e-12, abs_tol=1e-9)
    assert merged.features["city"] == whole.features["city"] and merged.rows == whole.rows


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.integers(-100, 100), st.none(), st.just("x")), max_size=30),
        min_size=3,
        max_size=3,
    )
)
def test_merge_is_associative(windows: list[list[object]]) -> None:
    made, _ = reference({"v": np.arange(-50.0, 50.0)})
    a, b, c = (profile({"v": w}, made) for w in windows)
    assert merge([merge([a, b]), c]) == merge([a, merge([b, c])]) == merge([a, b, c])


def test_bins_and_profiles_survive_json_exactly() -> None:
    rng = np.random.default_rng(3)
    ref = {
        "x": rng.lognormal(size=500),
        "k": rng.integers(0, 3, 500),  # few numbers: categories 0, 1, 2
        "ok": rng.random(500) < 0.3,
        "c": rng.choice(["a", "b", "c"], 500),
    }
    made, prof = reference(ref)
    bins_back = Bins.from_json(json.loads(json.dumps(made.to_json())))
    assert bins_back == made and bins_back.fingerprint == made.fingerprint
    assert Profile.from_json(json.loads(json.dumps(prof.to_json()))) == prof
    empty = profile({"x": [None], "k": [None], "ok": [None], "c": [None]}, made)
    assert Profile.from_json(json.loads(json.dumps(empty.to_json()))) == empty
    assert isinstance(made.features["ok"].categories[0], bool)  # type: ignore[union-attr]


def test_edited_bins_or_an_unknown_format_are_refused() -> None:
    made, _ = reference({"x": np.arange(100.0)})
    data = made.to_json()
    data["features"]["x"]["edges"][3] += 0.5
    with pytest.raises(DataError, match="fingerprint"):
        Bins.from_json(data)
    with pytest.raises(DataError, match="format"):
        Profile.from_json({"format": 99})


def test_a_profile_on_other_bins_is_refused_with_a_hint() -> None:
    _, ref_a = reference({"x": np.arange(100.0)})
    bins_b, _ = reference({"x": np.arange(200.0)})
    other = profile({"x": [1.0, 2.0]}, bins_b)
    with pytest.raises(BinsMismatch) as caught:
        merge([ref_a, other])
    assert isinstance(caught.value, ConveyorError) and caught.value.hint
    assert "profile(rows, bins)" in str(caught.value)


def test_missing_values_and_text_in_numbers_are_counted_apart() -> None:
    made, _ = reference({"x": np.arange(100.0)})
    got = profile({"x": [1.0, None, "abc", math.nan, math.inf, -math.inf, "2.5", 500.0]}, made)
    x = got.features["x"]
    assert isinstance(x, NumericSummary)
    # text that reads as a number is a number; other text is invalid; None/NaN/±inf missing
    assert (x.count, x.nulls, x.invalid, got.rows) == (3, 4, 1, 8)
    assert (x.min, x.max, x.sum, x.high_sum, x.counts[-1]) == (1.0, 500.0, 503.5, 500.0, 1)


def test_values_beyond_the_reference_fall_in_the_tails_with_their_sums() -> None:
    made, _ = reference({"x": np.linspace(0, 1, 1001)})
    x = profile({"x": np.array([-3.0, -1.0, 0.0, 0.5, 1.0, 4.0])}, made).features["x"]
    assert isinstance(x, NumericSummary)
    assert (x.counts[0], x.low_sum, x.counts[-1], x.high_sum) == (2, -4.0, 1, 4.0)
    assert x.counts[1] == 1  # exactly the reference's minimum has a bin of its own


def test_reference_deciles_are_among_the_edges() -> None:
    values = np.random.default_rng(4).gamma(2.0, size=5001)
    nb = reference({"x": values})[0].features["x"]
    edges = np.array(nb.edges)  # type: ignore[union-attr]
    deciles = edges[list(nb.deciles)]  # type: ignore[union-attr]
    assert np.allclose(deciles, np.quantile(values, np.arange(1, 10) / 10), rtol=0, atol=1e-12)


def test_unseen_and_pooled_categories() -> None:
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5
    made, prof = reference({"c": ref}, max_categories=2)
    cb = made.features["c"]
    assert (cb.categories, cb.pooled) == (("a", "b"), ("c", "d"))  # type: ignore[union-attr]
    assert prof.features["c"].counts == (50, 30, 20, 0)  # a, b, OTHER, UNSEEN
    got = profile({"c": ["a", "d", "zz", "zz", None]}, made).features["c"]
    assert got == CategoricalSummary(count=4, nulls=1, counts=(1, 0, 1, 2))


def test_kinds_follow_the_values_unless_named() -> None:
    rng = np.random.default_rng(5)
    cols = {
        "few": rng.integers(0, 5, 300),
        "many": rng.integers(0, 50, 300),
        "flag": rng.random(300) < 0.5,
        "text": rng.choice(["x", "y"], 300),
    }
    kinds = {n: f.kind for n, f in reference(cols)[0].features.items()}
    assert kinds == {
        "few": "categorical",
        "many": "numeric",
        "flag": "categorical",
        "text": "categorical",
    }
    named = reference(cols, categorical=["many", "flag", "text"])[0]
    assert {n: f.kind for n, f in named.features.items()} == {
        "few": "numeric",
        "many": "categorical",
        "flag": "categorical",
        "text": "categorical",
    }
    with pytest.raises(DataError, match="no numbers") as caught:
        reference(cols, categorical=["flag"])
    assert caught.value.hint


def test_category_pyarrow_and_object_columns_profile_alike() -> None:
    rng = np.random.default_rng(6)
    values = rng.choice(["a", "b", "c", "d"], 5000).tolist()
    values[::97] = [None] * len(values[::97])
    made, _ = reference({"c": values[:2500]})
    plain = profile({"c": values}, made)
    for dtype in ("category", "string[pyarrow]", object):
        assert profile(pd.DataFrame({"c": pd.Series(values, dtype=dtype)}), made) == plain


def test_a_feature_missing_from_the_window_is_all_missing(bins: Bins) -> None:
    got = profile({"city": ["oslo", "rome"]}, bins)
    assert got.features["x"].nulls == 2 and got.features["x"].count == 0


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(DataError, match="different lengths"):
        reference({"a": [1, 2, 3], "b": [1, 2]})


def test_big_frames_give_the_same_profile_on_threads() -> None:
    rng = np.random.default_rng(8)
    df = pd.DataFrame({f"x{i}": rng.normal(size=300_000) for i in range(4)})
    made, prof = reference(df)  # 1.2 M values: counted on threads
    halves = [profile(df.iloc[:100_000], made), profile(df.iloc[100_000:], made)]
    merged = merge(halves)
    assert all(merged.features[n].counts == prof.features[n].counts for n in df.columns)


def test_a_categorical_name_that_is_no_column_is_refused_with_a_suggestion() -> None:
    with pytest.raises(DataError) as caught:
        reference({"city": ["a", "b"], "age": [1.0, 2.0]}, categorical=["cty"])
    assert caught.value.hint and "city" in caught.value.hint


def test_dates_are_left_out_of_the_bins() -> None:
    when = pd.date_range("2026-01-01", periods=50, freq="h")
    made, prof = reference(pd.DataFrame({"when": when, "x": np.arange(50.0)}))
    assert list(made.features) == list(prof.features) == ["x"]


def test_too_few_bins_are_refused() -> None:
    with pytest.raises(ConfigError, match="bins must be at least 2"):
        reference({"x": np.arange(10.0)}, bins=1)
