"""Drift from window profiles: the statistics of :mod:`conveyor.stats.drift` computed from the
counts of :mod:`conveyor.monitor.profiles`, never from raw rows.

    columns = drift(bins, reference_profile, window_profile)     # -> [ColumnDrift, ...]
    verdict = dataset(bins, reference_profile, window_profile)   # -> DatasetDrift

Numeric features get the Kolmogorov–Smirnov statistic (the largest gap between the two CDFs at
the bin edges) and its p-value (scipy's asymptotic two-sample one: the exact one-sample
distribution for the effective size, Kolmogorov's limit past 1000 effective values), the
Wasserstein-1 distance in reference standard deviations (the area between the CDFs, linear
within a bin, each tail's mass at its mean) and PSI over the reference's deciles; categorical
ones get Pearson's chi-squared test of homogeneity, the Jensen–Shannon distance (base 2) and
PSI over categories. With about 100 quantile bins the KS statistic is within 0.01-0.02 of the
raw samples' and Wasserstein within a few percent (tests/stats/test_binned.py holds the
tolerances).

``method="auto"`` picks per feature as Evidently 0.7's DataDriftPreset does
(``_get_default_stattest``): a reference of at most 1000 values gets a test at ``p_value`` 0.05,
KS for numbers and chi-squared for categories (a Z-test when there are two values: the same
test, z² = chi²); a bigger one gets a distance at 0.1, Wasserstein for numbers and
Jensen–Shannon for categories (Evidently's 0.1 is in natural-log units: 0.1/sqrt(ln 2) = 0.120
in base 2). Unlike Evidently a test also needs an effect of ``effect_floor`` (KS statistic, or JS
distance for categories), so that a big sample does not flag a trivial shift (0 mirrors it
exactly), and the chi-squared test compares two samples rather than taking the reference as
exact. As in :mod:`conveyor.stats.drift`, a feature whose share of missing or invalid values
moved by more than ``max_null_shift`` has drifted, and fewer than ``min_samples`` values on
either side is inconclusive.

Pure: numpy, and :mod:`conveyor.stats.distributions` for the p-values (no scipy: a serving
install judges drift as the full one does); no files, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from conveyor.foundation.errors import ConfigError, DataError
from conveyor.foundation.suggest import did_you_mean
from conveyor.stats import distributions
from conveyor.stats.drift import ColumnDrift, psi, too_few, verdict

Floats = npt.NDArray[np.float64]

METHODS = ("auto", "ks", "wasserstein", "psi", "chisquare", "jensenshannon")
NUMERIC_METHODS = frozenset({"ks", "wasserstein", "psi", "jensenshannon"})
CATEGORICAL_METHODS = frozenset({"chisquare", "z", "psi", "jensenshannon"})
TESTS = frozenset({"ks", "chisquare", "z"})  # p-value methods; the others are distances
DISTANCES = {"wasserstein": 0.1, "jensenshannon": 0.1 / math.sqrt(math.log(2)), "psi": 0.2}
SMALL_REFERENCE = 1000  # auto: up to this many reference values, a test; above, a distance
EXACT_KS = 1000  # effective sample sizes up to which KS p-values use Smirnov's distribution


class BinsMismatch(DataError):
    """A profile made on other bins than the ones it is merged or compared with."""


def check_same_bins(expected: str, got: str, doing: str) -> None:
    """Refuse to ``doing`` (merge, compare) profiles made on different bins."""
    if expected != got:
        raise BinsMismatch(
            f"cannot {doing} profiles made on different bins ({got} is not {expected})",
            hint="profile every window on the bins of one reference (profile(rows, bins)), "
            "or derive the reference profile again with reference()",
        )


# What this module reads of conveyor.monitor.profiles' values (a higher layer, not imported).


class Counts(Protocol):
    """A feature's summary in a window: values present, missing, invalid; counts per bin."""

    @property
    def count(self) -> int: ...
    @property
    def nulls(self) -> int: ...
    @property
    def invalid(self) -> int: ...
    @property
    def counts(self) -> Sequence[int]: ...


class NumericCounts(Counts, Protocol):
    @property
    def sum(self) -> float: ...
    @property
    def squares(self) -> float: ...
    @property
    def low_sum(self) -> float: ...
    @property
    def high_sum(self) -> float: ...


class FeatureBins(Protocol):
    @property
    def kind(self) -> str: ...


class NumericBins(FeatureBins, Protocol):
    @property
    def array(self) -> Floats: ...
    @property
    def deciles(self) -> Sequence[int]: ...
    @property
    def center(self) -> float: ...


class BinsLike(Protocol):
    @property
    def fingerprint(self) -> str: ...
    @property
    def features(self) -> Mapping[str, FeatureBins]: ...


class ProfileLike(Protocol):
    @property
    def fingerprint(self) -> str: ...
    @property
    def features(self) -> Mapping[str, Counts]: ...


@dataclass(frozen=True)
class DatasetDrift:
    """Every feature's verdict; the dataset drifted when ``share`` (drifted among conclusive
    features) reached ``drift_share``. ``methods`` names the method each feature was judged by."""

    columns: tuple[ColumnDrift, ...]
    methods: Mapping[str, str]
    share: float
    drift_share: float

    @property
    def drifted(self) -> bool:
        return self.share >= self.drift_share and any(c.drifted for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted,
            "share": self.share,
            "drift_share": self.drift_share,
            "columns": [{**c.to_dict(), "method": self.methods[c.column]} for c in self.columns],
        }


def dataset(
    bins: BinsLike,
    reference: ProfileLike,
    current: ProfileLike,
    *,
    drift_share: float = 0.5,
    method: str | Mapping[str, str] = "auto",
    **options: Any,
) -> DatasetDrift:
    """:func:`drift` of every feature, and whether the dataset drifted as Evidently decides:
    the share of drifted features reached ``drift_share``."""
    columns = drift(bins, reference, current, method=method, **options)
    methods = {
        name: method_for(name, fb, reference.features[name], method, current.features[name])
        for name, fb in bins.features.items()
    }
    return DatasetDrift(tuple(columns), methods, share(columns), drift_share)


def share(columns: Sequence[ColumnDrift]) -> float:
    """The share of drifted features among those with a verdict (0.0 when none has one)."""
    conclusive = [c for c in columns if c.verdict in ("drifted", "stable")]
    return sum(c.drifted for c in conclusive) / len(conclusive) if conclusive else 0.0


def drift(
    bins: BinsLike,
    reference: ProfileLike,
    current: ProfileLike,
    *,
    method: str | Mapping[str, str] = "auto",
    threshold: float | None = None,
    p_value: float = 0.05,
    min_samples: int = 30,
    effect_floor: float = 0.1,
    max_null_shift: float = 0.1,
) -> list[ColumnDrift]:
    """Each feature's drift from the reference profile to the current one, both on ``bins``.

    ``method`` applies to every feature of a kind it supports (the others get ``auto``), or is
    a mapping feature -> method. ``threshold`` replaces the method's own: the p-value of a test,
    the distance from which a distance method calls drift.

    >>> from conveyor.monitor.profiles import profile, reference
    >>> rng = np.random.default_rng(0)
    >>> bins, ref = reference({"x": rng.normal(0, 1, 5000)})
    >>> [c.verdict for c in drift(bins, ref, profile({"x": rng.normal(0.5, 1, 5000)}, bins))]
    ['drifted']
    """
    for side in (reference, current):
        check_same_bins(bins.fingerprint, side.fingerprint, "compare")
    _check_methods(method, bins)
    _check_options(p_value, min_samples, max_null_shift)
    out = []
    for name, fb in bins.features.items():
        ref, cur = reference.features[name], current.features[name]
        chosen = method_for(name, fb, ref, method, cur)
        limit = threshold if threshold is not None else DISTANCES.get(chosen, p_value)
        stats, reasons = _null_shift(ref, cur, max_null_shift, p_value, min_samples)
        short = too_few(ref.count, cur.count, min_samples)
        if fb.kind == "numeric":
            numeric = (
                _numeric(cast(NumericBins, fb), cast(NumericCounts, ref), cast(NumericCounts, cur))
                if short is None
                else dict.fromkeys(_NUMERIC)
            )
            stats.update(numeric)
        else:
            stats.update(_categorical(ref, cur) if short is None else dict.fromkeys(_CATEGORIES))
        if short is None:
            reasons += _rule(chosen, stats, limit, effect_floor, p_value)
        out.append(verdict(name, fb.kind, stats, reasons, short, ref.count, cur.count))
    return out


def method_for(
    name: str,
    bins: FeatureBins,
    reference: Counts,
    method: str | Mapping[str, str],
    current: Counts | None = None,
) -> str:
    """The method a feature is judged by: ``method``'s if it applies, else auto's choice."""
    wanted = method.get(name, "auto") if isinstance(method, Mapping) else method
    allowed = NUMERIC_METHODS if bins.kind == "numeric" else CATEGORICAL_METHODS
    if wanted in allowed:
        return wanted
    small = reference.count <= SMALL_REFERENCE
    if bins.kind == "numeric":
        return "ks" if small else "wasserstein"
    if not small:
        return "jensenshannon"
    both = np.add(reference.counts, current.counts) if current else np.array(reference.counts)
    return "z" if np.count_nonzero(both) <= 2 else "chisquare"


def _check_options(p_value: float, min_samples: int, max_null_shift: float) -> None:
    problems = [
        f"{name} must be {want}, not {value!r}"
        for name, value, want, ok in (
            ("p_value", p_value, "between 0 and 1", 0 < p_value < 1),
            ("min_samples", min_samples, "at least 2", min_samples >= 2),
            ("max_null_shift", max_null_shift, "between 0 and 1", 0 <= max_null_shift <= 1),
        )
        if not ok
    ]
    if problems:
        raise ConfigError(f"drift options: {'; '.join(problems)}")


def _check_methods(method: str | Mapping[str, str], bins: BinsLike) -> None:
    per_feature = dict(method) if isinstance(method, Mapping) else {}
    for wanted in list(per_feature.values()) or [str(method)]:
        if wanted not in METHODS and wanted != "z":
            hint = did_you_mean(wanted, METHODS) or f"methods: {', '.join(METHODS)}"
            raise ConfigError(f"unknown drift method {wanted!r}", hint=hint)
    for name, wanted in per_feature.items():
        if name not in bins.features:
            hint = did_you_mean(name, bins.features) or f"features: {', '.join(bins.features)}"
            raise ConfigError(f"drift method for an unknown feature {name!r}", hint=hint)
        kind = bins.features[name].kind
        allowed = NUMERIC_METHODS if kind == "numeric" else CATEGORICAL_METHODS
        if wanted != "auto" and wanted not in allowed:
            raise ConfigError(
                f"drift method {wanted!r} does not apply to the {kind} feature {name!r}",
                hint=f"use one of: auto, {', '.join(sorted(allowed))}",
            )


# ---------------------------------------------------------------------------- statistics

_NUMERIC = ("psi", "ks_statistic", "ks_p_value", "wasserstein", "js_distance")
_CATEGORIES = ("psi", "chi2_p_value", "js_distance", "unseen_fraction")


def _numeric(bins: NumericBins, ref: NumericCounts, cur: NumericCounts) -> dict[str, float | None]:
    r, c = np.array(ref.counts, dtype=np.float64), np.array(cur.counts, dtype=np.float64)
    fr, fc = np.cumsum(r) / ref.count, np.cumsum(c) / cur.count
    ks = float(np.max(np.abs(fr - fc)[:-1]))
    en = ref.count * cur.count / (ref.count + cur.count)
    deciles = np.array(bins.deciles, dtype=np.int64) + 1  # bins[i + 1] ends at edges[i]
    return {
        "psi": psi(_regroup(r, deciles), _regroup(c, deciles)),
        "ks_statistic": ks,
        "ks_p_value": _ks_p(ks, en),
        "wasserstein": _wasserstein(bins.array, ref, cur, fr, fc) / max(_std(ref, bins), 1e-3),
        "js_distance": _jensen_shannon(r, c),
    }


def _ks_p(statistic: float, en: float) -> float:
    """Two-sided KS p-value for the effective sample size ``en`` = n·m/(n+m): the exact
    distribution of the one-sample statistic for n (scipy's ``ks_2samp(method="asymp")``) up
    to EXACT_KS values, then Kolmogorov's limit, as exact by then and without the former's
    work. Both from :mod:`conveyor.stats.distributions`, the same in every install."""
    if en <= EXACT_KS:
        return distributions.ks_sf(round(en), statistic)
    return distributions.kolmogorov_sf(math.sqrt(en) * statistic)


def _categorical(ref: Counts, cur: Counts) -> dict[str, float | None]:
    r, c = np.array(ref.counts, dtype=np.float64), np.array(cur.counts, dtype=np.float64)
    return {
        "psi": psi(r, c),
        "chi2_p_value": _chi2_p(r, c),
        "js_distance": _jensen_shannon(r, c),
        "unseen_fraction": float(c[-1] / cur.count),
    }


def _regroup(counts: Floats, ends: npt.NDArray[np.int64]) -> Floats:
    """Counts of the bins up to each end (inclusive) and after the last one."""
    cumulative = np.cumsum(counts)
    return np.diff(np.concatenate(([0.0], cumulative[ends], [cumulative[-1]])))


def _wasserstein(
    edges: Floats, ref: NumericCounts, cur: NumericCounts, fr: Floats, fc: Floats
) -> float:
    """Area between the CDFs: linear within each bin between edges, each tail bin's mass a
    point at its mean (a step), so values beyond the reference's range count at their distance."""
    gap = (fr - fc)[1 : len(edges) + 1]  # at each edge
    a, b = gap[:-1], gap[1:]
    same_sign = a * b >= 0
    total = np.abs(a) + np.abs(b)
    crossing = np.divide(a * a + b * b, 2 * total, out=np.zeros_like(total), where=total > 0)
    inner = float(np.sum(np.diff(edges) * np.where(same_sign, total / 2, crossing)))
    low = _tail_area(
        edges[0], [(ref.counts[0], ref.low_sum, ref.count), (cur.counts[0], cur.low_sum, cur.count)]
    )
    high = _tail_area(
        edges[-1],
        [(ref.counts[-1], ref.high_sum, ref.count), (cur.counts[-1], cur.high_sum, cur.count)],
    )
    return inner + low + high


def _tail_area(edge: float, sides: list[tuple[int, float, int]]) -> float:
    """Area between two step CDFs whose tail mass sits at its mean, between it and ``edge``."""
    (m1, x1), (m2, x2) = sorted(
        ((k / n, total / k if k else edge) for k, total, n in sides),
        key=lambda mx: abs(mx[1] - edge),
        reverse=True,
    )
    return m1 * abs(x1 - x2) + abs(m1 - m2) * abs(x2 - edge)


def _std(summary: NumericCounts, bins: NumericBins) -> float:
    mean = summary.sum / summary.count
    variance = summary.squares / summary.count - (mean - bins.center) ** 2
    return math.sqrt(max(variance, 0.0))


def _jensen_shannon(r: Floats, c: Floats) -> float:
    p, q = r / r.sum(), c / c.sum()
    m = (p + q) / 2
    divergence = (_kl(p, m) + _kl(q, m)) / 2
    return math.sqrt(max(divergence, 0.0))


def _kl(p: Floats, m: Floats) -> float:
    present = p > 0
    return float(np.sum(p[present] * np.log2(p[present] / m[present])))


def _chi2_p(r: Floats, c: Floats) -> float:
    """Pearson's chi-squared test that two samples share one distribution (no correction)."""
    table = np.array([r, c])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return distributions.chi2_sf(statistic, table.shape[1] - 1)


# --------------------------------------------------------------------------------- rules


def _rule(
    method: str, stats: Mapping[str, float | None], limit: float, floor: float, p_value: float
) -> list[str]:
    if method in TESTS:
        numeric = method == "ks"
        p = _f(stats["ks_p_value" if numeric else "chi2_p_value"])
        effect_name = "ks statistic" if numeric else "js distance"
        effect = _f(stats["ks_statistic" if numeric else "js_distance"])
        if p < limit and effect >= floor:
            return [f"{method} p {p:.2g} < {limit:g}", f"{effect_name} {effect:.3g} >= {floor:g}"]
        return []
    key = {"wasserstein": "wasserstein", "jensenshannon": "js_distance", "psi": "psi"}[method]
    value = _f(stats[key])
    if value < limit:
        return []
    # ... and the difference must be real: a small window's sampling noise alone can reach a
    # distance (Wasserstein 0.1 is within the noise of 400 rows), so the feature's test at
    # ``p_value`` must agree (a big window passes it for any distance that matters).
    test = "ks_p_value" if "ks_p_value" in stats else "chi2_p_value"
    tested = stats.get(test)
    if tested is not None and tested >= p_value:
        return []
    said = f"{key.replace('_', ' ')} {value:.3g} >= {limit:.3g}"
    if tested is None:
        return [said]
    return [said, f"{test.partition('_')[0]} p {tested:.2g} < {p_value:g}"]


def _null_shift(
    ref: Counts, cur: Counts, max_shift: float, p_value: float, min_samples: int
) -> tuple[dict[str, float | None], list[str]]:
    """Shares of missing (and invalid) values, and the rule on their change."""
    shares: list[float | None] = []
    for s in (ref, cur):
        total = s.count + s.nulls + s.invalid
        shares.append((s.nulls + s.invalid) / total if total else None)
    stats: dict[str, float | None] = {
        "null_fraction_reference": shares[0],
        "null_fraction_current": shares[1],
    }
    stats["invalid_fraction_current"] = cur.invalid / max(cur.count + cur.nulls + cur.invalid, 1)
    a, b = shares
    totals = [s.count + s.nulls + s.invalid for s in (ref, cur)]
    if a is None or b is None or min(totals) < min_samples or abs(b - a) <= max_shift:
        return stats, []
    missing = np.array([ref.nulls + ref.invalid, cur.nulls + cur.invalid], dtype=np.float64)
    p = _chi2_p(missing, np.array([ref.count, cur.count], dtype=np.float64))
    if p >= p_value:
        return stats, []
    return stats, [f"missing values {a:.1%} -> {b:.1%} (p {p:.2g})"]


def _f(value: float | None) -> float:
    return math.nan if value is None else value
