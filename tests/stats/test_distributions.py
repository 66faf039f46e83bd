"""The drift tests' distributions without scipy, held against scipy (which the dev install has)
over grids that cross every method's boundaries: within 1e-10 relative wherever scipy's value
is representable (the worst seen is about 1e-12), and the same underflow to 0 below that."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import special, stats
from scipy.stats._ksstats import kolmogn

from conveyor.stats.distributions import chi2_sf, gamma_q, kolmogorov_sf, ks_sf, smirnov_sf

RTOL = 1e-10
TINY = 1e-300  # below it, both must be (about) zero: the p-value of no verdict's doubt


def _close(ours: float, theirs: float) -> bool:
    if theirs < TINY:
        return ours < TINY * 10
    return abs(ours - theirs) <= RTOL * theirs


def _ks_points(n: int) -> np.ndarray:
    """A grid of statistics, with the values where ks_sf changes method for this n."""
    boundaries = np.sqrt(np.array([0.2, 0.754693, 0.76, 1, 2.2, 2.3, 4, 4.1, 18, 369, 371]) / n)
    points = np.concatenate(
        [
            np.linspace(0.0, 1.0, 201),
            [0.5 / n, 1 / n, 1.5 / n, (n - 1) / n, 1 - 0.5 / n, 0.4999, 0.5, 0.5001],
            boundaries,
            (1.4 / n) ** (2 / 3) * np.array([0.99, 1.01]),
        ]
    )
    return np.unique(points[(points >= 0) & (points <= 1)])


SIZES = [1, 2, 3, 5, 8, 13, 30, 50, 99, 100, 139, 140, 141, 200, 333, 500, 777, 999, 1000]


@pytest.mark.parametrize("n", SIZES)
def test_the_two_sided_ks_distribution_is_scipys(n: int) -> None:
    for d in _ks_points(n):
        ours, theirs = ks_sf(n, float(d)), float(kolmogn(n, d, cdf=False))
        assert _close(ours, theirs), (n, d, ours, theirs)


@pytest.mark.parametrize("n", SIZES)
def test_the_one_sided_smirnov_distribution_is_scipys(n: int) -> None:
    for d in _ks_points(n):
        ours, theirs = smirnov_sf(n, float(d)), float(special.smirnov(n, d))
        assert _close(ours, theirs), (n, d, ours, theirs)


def test_kolmogorovs_limit_is_scipys() -> None:
    for y in np.concatenate([np.linspace(0.0, 28.0, 2801), [0.0406, 0.0407, 0.81999, 0.82001]]):
        ours, theirs = kolmogorov_sf(float(y)), float(special.kolmogorov(y))
        assert _close(ours, theirs), (y, ours, theirs)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 9, 10, 25, 49, 99, 100, 199, 201, 500, 1000])
def test_chi_squared_is_scipys(df: int) -> None:
    grid = np.linspace(0.0, 6 * df + 60, 400)
    for x in np.concatenate([grid, [1e-3, 0.5, 1.0, df - 1.0, df, df + 1.0]]):
        ours, theirs = chi2_sf(float(x), df), float(stats.chi2.sf(x, df))
        assert _close(ours, theirs), (df, x, ours, theirs)


def test_the_upper_incomplete_gamma_at_its_edges() -> None:
    assert gamma_q(2.5, 0.0) == 1.0
    assert gamma_q(2.5, math.inf) == 0.0
    assert math.isnan(gamma_q(0.0, 1.0)) and math.isnan(gamma_q(1.0, -1.0))
    assert gamma_q(1.0, 3.0) == pytest.approx(math.exp(-3.0), rel=1e-14)  # Q(1, x) = e^-x
    assert gamma_q(0.5, 2.0) == pytest.approx(math.erfc(math.sqrt(2.0)), rel=1e-13)
    assert gamma_q(3.0, 2000.0) == 0.0  # underflows, never NaN


def test_the_ends_of_the_ks_distributions() -> None:
    assert ks_sf(10, 0.0) == smirnov_sf(10, 0.0) == kolmogorov_sf(0.0) == 1.0
    assert ks_sf(10, 1.0) == smirnov_sf(10, 1.0) == 0.0
    assert ks_sf(10, 0.04) == 1.0  # below 1/2n: every sample is that far
    assert all(math.isnan(v) for v in (ks_sf(0, 0.1), ks_sf(10, math.nan), kolmogorov_sf(math.nan)))
    assert smirnov_sf(1, 0.3) == pytest.approx(0.7)


def test_importing_them_loads_numpy_only() -> None:
    code = (
        "import sys\nimport conveyor.stats.distributions\n"
        "print(sorted({'numpy', 'pandas', 'scipy'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['numpy']"
