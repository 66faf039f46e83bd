"""Drift of every column of two DataFrames: kinds from dtypes, skipped and absent columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.foundation.errors import ConveyorError
from conveyor.stats.frames import compare


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_compare_frames(rng: np.random.Generator) -> None:
    n = 1000
    reference = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "y": rng.normal(0, 1, n),
            "city": rng.choice(["Paris", "Berlin"], n),
            "label": rng.integers(0, 2, n),
            "id": [f"u{i}" for i in range(n)],
            "day": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "gone": rng.normal(0, 1, n),
        }
    )
    current = reference.drop(columns="gone").assign(
        x=rng.normal(1, 1, n), y=rng.normal(0, 1, n), label=rng.choice([0, 1], n, p=[0.9, 0.1])
    )
    results = {r.column: r for r in compare(reference, current)}
    assert list(results) == ["x", "y", "city", "label", "id", "day", "gone"]
    verdicts = {name: (r.kind, r.verdict) for name, r in results.items()}
    assert verdicts == {
        "x": ("numeric", "drifted"),
        "y": ("numeric", "stable"),
        "city": ("categorical", "stable"),
        "label": ("categorical", "drifted"),  # few integers: compared as categories
        "id": ("categorical", "skipped"),
        "day": ("datetime", "skipped"),
        "gone": ("-", "inconclusive"),
    }
    assert "identifier" in results["id"].reasons[0]
    named = compare(reference, current, columns=["day", "id"])
    assert [(r.kind, r.verdict) for r in named] == [
        ("numeric", "stable"),  # named dates: compared as seconds
        ("categorical", "stable"),
    ]
    with pytest.raises(ConveyorError, match="no column 'cty'") as exc:
        compare(reference, current, columns=["cty"])
    assert exc.value.hint == "did you mean 'city'?"


def test_compare_coerces_the_current_side(rng: np.random.Generator) -> None:
    reference = pd.DataFrame({"x": rng.normal(0, 1, 500)})
    current = pd.DataFrame({"x": [str(v) for v in rng.normal(0, 1, 450)] + ["oops"] * 50})
    (result,) = compare(reference, current)
    assert result.n_current == 450 and result.statistics["null_fraction_current"] == 0.1
    assert result.verdict == "drifted" and "missing values" in result.reasons[0]
    assert result.to_dict()["verdict"] == "drifted"
