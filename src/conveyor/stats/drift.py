"""Drift: has a column's distribution moved between a reference sample and a current one?

    numeric_drift(train_ages, serving_ages)        # plain arrays (the monitor's live samples)
    categorical_drift(train_cities, serving_cities)

Numeric columns get the Population Stability Index over the reference's deciles, the
two-sample Kolmogorov–Smirnov test and the Wasserstein distance in reference standard
deviations; categorical ones get PSI over categories, Pearson's chi-squared test and the
Jensen–Shannon distance (base 2). A column has *drifted* when a test says the difference is
real (p below ``p_value``) and an effect size says it matters (PSI, KS statistic, JS distance
above their thresholds), or when its share of missing values moved by ``max_null_shift``; too few
values on either side is *inconclusive*, never a pass. docs/data-validation.md has the formulas.

Pure: numpy and scipy only (scipy imported on first use), no files, no clock. Every column of
two DataFrames: :func:`conveyor.stats.frames.compare`.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from conveyor.foundation.errors import ConfigError

Verdict = Literal["drifted", "stable", "inconclusive", "skipped"]
Floats = npt.NDArray[np.float64]

UNSEEN = "<unseen>"  # current values the reference never had, in one bucket
OTHER = "<other>"  # reference categories beyond max_categories, in one bucket


@dataclass(frozen=True)
class DriftRules:
    """When a column counts as drifted; the defaults are documented in docs/data-validation.md."""

    psi_threshold: float = 0.2  # PSI above this is a material shift (the usual rule of thumb)
    p_value: float = 0.01  # a test's p below this is a real difference (0.01: many columns)
    min_ks_statistic: float = 0.1  # ... and so is a KS statistic from this
    min_js_distance: float = 0.1  # ... and a Jensen–Shannon distance from this
    wasserstein_threshold: float | None = None  # in reference std devs; None: reported only
    max_null_shift: float = 0.1  # missing-value share moving this much (absolute) is drift
    min_samples: int = 30  # fewer values on either side: inconclusive
    bins: int = 10  # quantile bins of the reference for numeric PSI
    epsilon: float = 1e-4  # the share given to a bin empty on one side, for PSI
    max_categories: int = 50  # more reference categories than this: the rarest pooled
    categorical_below: int = 5  # compare(): numbers with at most this many values are categories

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be {want}, not {getattr(self, name)!r}"
            for name, want, ok in (
                ("p_value", "between 0 and 1", 0 < self.p_value < 1),
                ("psi_threshold", "at least 0", self.psi_threshold >= 0),
                ("max_null_shift", "between 0 and 1", 0 <= self.max_null_shift <= 1),
                ("min_samples", "at least 2", self.min_samples >= 2),
                ("bins", "at least 2", self.bins >= 2),
                ("epsilon", "between 0 and 1", 0 < self.epsilon < 1),
                ("max_categories", "at least 1", self.max_categories >= 1),
            )
            if not ok
        ]
        if problems:
            raise ConfigError(f"drift rules: {'; '.join(problems)}")


RULES = DriftRules()


@dataclass(frozen=True)
class ColumnDrift:
    """The drift verdict on one column, with every statistic and the rules that decided it.

    ``statistics`` maps a name (``psi``, ``ks_statistic``, ``ks_p_value``, ``wasserstein``;
    ``psi``, ``chi2_p_value``, ``js_distance``, ``unseen_fraction``; always
    ``null_fraction_reference`` and ``null_fraction_current``) to its value, None where it is
    not defined. ``reasons`` say which rules fired (drifted) or why there is no verdict.
    ``n_reference`` and ``n_current`` count the values present (missing ones excluded).
    """

    column: str
    kind: str  # "numeric" or "categorical"
    verdict: Verdict
    statistics: Mapping[str, float | None]
    reasons: tuple[str, ...]
    n_reference: int
    n_current: int

    @property
    def drifted(self) -> bool:
        return self.verdict == "drifted"

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "verdict": self.verdict,
            "statistics": dict(self.statistics),
            "reasons": list(self.reasons),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
        }


# ------------------------------------------------------------------------------------ numeric


def numeric_drift(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, column: str = "", rules: DriftRules = RULES
) -> ColumnDrift:
    """Drift of numbers; NaN, None and ±inf count as missing.

    >>> rng = np.random.default_rng(0)
    >>> numeric_drift(rng.normal(0, 1, 2000), rng.normal(0.5, 1, 2000)).verdict
    'drifted'
    """
    ref_all = np.asarray(reference, dtype=np.float64).ravel()
    cur_all = np.asarray(current, dtype=np.float64).ravel()
    ref, cur = ref_all[np.isfinite(ref_all)], cur_all[np.isfinite(cur_all)]
    stats, reasons = _null_shift(len(ref_all), len(ref), len(cur_all), len(cur), rules)
    stats.update(psi=None, ks_statistic=None, ks_p_value=None, wasserstein=None)
    short = too_few(len(ref), len(cur), rules.min_samples)
    if short is None:
        stats.update(_numeric_statistics(ref, cur, rules))
        reasons += _numeric_rules(stats, rules)
    return verdict(column, "numeric", stats, reasons, short, len(ref), len(cur))


def psi_bins(reference: Floats, bins: int) -> Floats:
    """The inner edges of ``bins`` quantile bins of ``reference`` (repeated edges merged)."""
    inner = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def _numeric_statistics(ref: Floats, cur: Floats, rules: DriftRules) -> dict[str, float | None]:
    from scipy import stats

    edges = psi_bins(ref, rules.bins)
    # side="left": bins are (-inf, e1], (e1, e2], ..., (ek, inf), so a constant reference
    # still tells values above it apart from it.
    slots = len(edges) + 1
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=slots)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=slots)
    with warnings.catch_warnings():  # "exact calculation unsuccessful, switching to asymp"
        warnings.simplefilter("ignore", RuntimeWarning)
        ks = stats.ks_2samp(ref, cur)
    spread = float(np.std(ref))
    distance = float(stats.wasserstein_distance(ref, cur))
    return {
        "psi": psi(ref_counts, cur_counts, rules.epsilon),
        "ks_statistic": float(ks.statistic),
        "ks_p_value": float(ks.pvalue),
        "wasserstein": distance / spread if spread > 0 else None,
    }


def _numeric_rules(stats: Mapping[str, float | None], rules: DriftRules) -> list[str]:
    p, d = _f(stats["ks_p_value"]), _f(stats["ks_statistic"])
    if p >= rules.p_value:
        return []
    effects = []
    if _f(stats["psi"]) > rules.psi_threshold:
        effects.append(f"psi {_f(stats['psi']):.3g} > {rules.psi_threshold:g}")
    if d >= rules.min_ks_statistic:
        effects.append(f"ks statistic {d:.3g} >= {rules.min_ks_statistic:g}")
    w, limit = stats["wasserstein"], rules.wasserstein_threshold
    if limit is not None and w is not None and w >= limit:
        effects.append(f"wasserstein {w:.3g} >= {limit:g}")
    return [f"ks p {p:.2g} < {rules.p_value:g}", *effects] if effects else []


# -------------------------------------------------------------------------------- categorical


def categorical_drift(
    reference: Iterable[Any], current: Iterable[Any], *, column: str = "", rules: DriftRules = RULES
) -> ColumnDrift:
    """Drift of categories (any hashable values); None and NaN count as missing.

    >>> categorical_drift(["a", "b"] * 50, ["a"] * 90 + ["b"] * 10).verdict
    'drifted'
    """
    ref_counts, ref_missing = count_values(reference)
    cur_counts, cur_missing = count_values(current)
    return categorical_counts_drift(
        ref_counts, ref_missing, cur_counts, cur_missing, column=column, rules=rules
    )


def count_values(values: Iterable[Any]) -> tuple[dict[Hashable, int], int]:
    """How often each value occurs, and how many are missing (None or NaN)."""
    array = values if isinstance(values, np.ndarray) else None
    if array is not None and array.dtype.kind in "iufb":
        present = array[~np.isnan(array)] if array.dtype.kind == "f" else array
        found, counts = np.unique(present, return_counts=True)
        return dict(zip(found.tolist(), counts.tolist(), strict=True)), len(array) - len(present)
    counter = Counter(array.tolist() if array is not None else values)  # numpy scalars -> Python
    missing = counter.pop(None, 0)
    for key in [k for k in counter if isinstance(k, float) and math.isnan(k)]:
        missing += counter.pop(key)
    return dict(counter), missing


def categorical_counts_drift(
    reference: Mapping[Hashable, int],
    reference_missing: int,
    current: Mapping[Hashable, int],
    current_missing: int,
    *,
    column: str = "",
    rules: DriftRules = RULES,
) -> ColumnDrift:
    """:func:`categorical_drift` from counts per category (for callers that keep counts)."""
    n_ref, n_cur = sum(reference.values()), sum(current.values())
    stats, reasons = _null_shift(
        n_ref + reference_missing, n_ref, n_cur + current_missing, n_cur, rules
    )
    stats.update(psi=None, chi2_p_value=None, js_distance=None, unseen_fraction=None)
    short = too_few(n_ref, n_cur, rules.min_samples)
    if short is None:
        ref_vec, cur_vec, unseen = _buckets(reference, current, rules.max_categories)
        stats.update(_categorical_statistics(ref_vec, cur_vec, rules))
        stats["unseen_fraction"] = float(cur_vec[-1] / n_cur)
        reasons += _categorical_rules(stats, rules, unseen)
    return verdict(column, "categorical", stats, reasons, short, n_ref, n_cur)


def _buckets(
    reference: Mapping[Hashable, int], current: Mapping[Hashable, int], keep: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[Hashable]]:
    """Counts per bucket: the ``keep`` commonest reference categories, then the rest of the
    reference's pooled (OTHER), then the values it never had (UNSEEN)."""
    ranked = sorted(reference, key=lambda k: (-reference[k], str(k)))
    kept, pooled = ranked[:keep], set(ranked[keep:])
    ref_vec = [reference[k] for k in kept] + [sum(reference[k] for k in pooled)]
    cur_vec = [current.get(k, 0) for k in kept] + [sum(current.get(k, 0) for k in pooled)]
    unseen = sorted((k for k in current if k not in reference), key=lambda k: -current[k])
    ref_vec.append(0)
    cur_vec.append(sum(current[k] for k in unseen))
    return np.array(ref_vec, dtype=np.int64), np.array(cur_vec, dtype=np.int64), unseen


def _categorical_statistics(
    ref: npt.NDArray[np.int64], cur: npt.NDArray[np.int64], rules: DriftRules
) -> dict[str, float | None]:
    from scipy import stats
    from scipy.spatial import distance

    table = np.array([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    # One bucket in all: the samples agree, and chi-squared has no degrees of freedom.
    p = float(stats.chi2_contingency(table).pvalue) if table.shape[1] > 1 else 1.0
    js = float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2))
    return {"psi": psi(ref, cur, rules.epsilon), "chi2_p_value": p, "js_distance": js}


def _categorical_rules(
    stats: Mapping[str, float | None], rules: DriftRules, unseen: list[Hashable]
) -> list[str]:
    p = _f(stats["chi2_p_value"])
    if p >= rules.p_value:
        return []
    effects = []
    if _f(stats["psi"]) > rules.psi_threshold:
        effects.append(f"psi {_f(stats['psi']):.3g} > {rules.psi_threshold:g}")
    if _f(stats["js_distance"]) >= rules.min_js_distance:
        effects.append(f"js distance {_f(stats['js_distance']):.3g} >= {rules.min_js_distance:g}")
    if effects and unseen:
        shown = ", ".join(repr(k) for k in unseen[:3]) + (", ..." if len(unseen) > 3 else "")
        effects.append(f"new values {shown}")
    return [f"chi2 p {p:.2g} < {rules.p_value:g}", *effects] if effects else []


# ------------------------------------------------------------------------------------- shared


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, epsilon: float = 1e-4) -> float:
    """Population Stability Index of two histograms over the same bins (counts or shares):
    ``sum((c - r) * ln(c / r))`` over shares, a share of 0 raised to ``epsilon``.

    >>> round(psi([50, 50], [50, 50]), 6)
    0.0
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    r = np.maximum(r / r.sum(), epsilon)
    c = np.maximum(c / c.sum(), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def _null_shift(
    ref_total: int, ref_present: int, cur_total: int, cur_present: int, rules: DriftRules
) -> tuple[dict[str, float | None], list[str]]:
    """Missing-value shares, and the rule on their change when both sides have enough rows."""
    ref_null = (ref_total - ref_present) / ref_total if ref_total else None
    cur_null = (cur_total - cur_present) / cur_total if cur_total else None
    stats: dict[str, float | None] = {
        "null_fraction_reference": ref_null,
        "null_fraction_current": cur_null,
    }
    if ref_null is None or cur_null is None or min(ref_total, cur_total) < rules.min_samples:
        return stats, []
    if abs(cur_null - ref_null) < rules.max_null_shift:
        return stats, []
    from scipy import stats as tests

    table = [[ref_total - ref_present, ref_present], [cur_total - cur_present, cur_present]]
    p = float(tests.chi2_contingency(table).pvalue)
    if p >= rules.p_value:
        return stats, []
    return stats, [f"missing values {ref_null:.1%} -> {cur_null:.1%} (p {p:.2g})"]


def too_few(n_ref: int, n_cur: int, least: int) -> str | None:
    """Why two samples are too small to judge (fewer than ``least`` values on a side), or None."""
    for side, n in (("reference", n_ref), ("current", n_cur)):
        if n < least:
            return f"too few values in the {side} sample ({n} < {least})"
    return None


def verdict(
    column: str,
    kind: str,
    stats: dict[str, float | None],
    reasons: list[str],
    short: str | None,
    n_ref: int,
    n_cur: int,
) -> ColumnDrift:
    """A column's verdict: drifted when a rule fired, else inconclusive when ``short`` says the
    samples were too small, else stable."""
    if reasons:
        said: Verdict = "drifted"
    elif short is not None:
        said, reasons = "inconclusive", [short]
    else:
        said = "stable"
    return ColumnDrift(column, kind, said, stats, tuple(reasons), n_ref, n_cur)


def _f(value: float | None) -> float:
    return math.nan if value is None else value
