"""Window profiles: the prediction log summarised per window into small mergeable counts, so
that monitoring computes drift without ever reading raw rows again.

    bins, ref = reference(training_frame)          # bins fixed once, from the reference
    monday = profile(monday_rows, bins)            # one profile per window of the log
    week = merge([monday, tuesday, ...])           # == profile of all the rows at once
    Profile.from_json(week.to_json()) == week

:class:`Bins` says how each feature is counted: a numeric feature by about 100 quantile bins of
the reference (its deciles among the edges, for PSI) plus a tail bin on each side for values
outside the reference's range; a categorical one by the reference's commonest categories, the
rest of its values pooled as ``OTHER`` and values it never had as ``UNSEEN``. A
:class:`Profile` holds, per feature, counts per bin, missing values (None, NaN, ±inf) and type
violations (text in a numeric column) apart, and for numbers their sum, sum of squares, min,
max and the sum of each tail bin. Profiles only merge with, and only compare to, profiles made
on the same bins (:attr:`Bins.fingerprint`). Drift from profiles: :mod:`conveyor.stats.binned`.

Pure: numpy (pandas not needed: a DataFrame is read as it is, a column of objects counted by
pandas when it is big and pandas is installed, with the same result; see
:mod:`conveyor.monitor.columns`), no files, no clock. Numbers are counted by sorting each
column once (numpy's vectorised sort beats a binary search per value) and searching the edges
in it; the features of a big frame are counted on two threads (numpy releases the GIL).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

from conveyor.foundation.errors import ConfigError, DataError
from conveyor.foundation.suggest import did_you_mean
from conveyor.monitor import columns as cols
from conveyor.monitor.columns import MOSTLY_NUMBERS as MOSTLY_NUMBERS
from conveyor.stats.binned import BinsMismatch, check_same_bins
from conveyor.stats.drift import OTHER, UNSEEN

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "OTHER",
    "UNSEEN",
    "Bins",
    "BinsMismatch",
    "CategoricalBins",
    "CategoricalSummary",
    "NumericBins",
    "NumericSummary",
    "Profile",
    "merge",
    "profile",
    "reference",
]

Value = str | int | float | bool  # a category, as JSON keeps it
Frame: TypeAlias = "pd.DataFrame | Mapping[str, Any]"
Floats = npt.NDArray[np.float64]
T = TypeVar("T")
_NONE: Floats = np.empty(0, dtype=np.float64)
_NO_COUNTS = cols.Counts([], np.zeros(0, dtype=np.int64), 0)

CATEGORICAL_BELOW = 5  # numbers with at most this many distinct values are categories
MAX_CATEGORIES = 200  # categories counted one by one; the rest of the reference's are OTHER
MAX_POOLED = 10_000  # reference values remembered as OTHER; beyond, they count as UNSEEN
FORMAT = 1  # the version of to_json()'s layout
PARALLEL_FROM = 1_000_000  # values in a frame from which its features are counted on threads
THREADS = min(2, os.cpu_count() or 1)
TAIL_SPLITS = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01)  # of the outer bins' share: extra edges
CHUNK = 1 << 15  # values per step where a temporary array is needed


# ----------------------------------------------------------------------------------- bins


@dataclass(frozen=True)
class NumericBins:
    """Counted as: below ``edges[0]``, exactly ``edges[0]``, ``(edges[i-1], edges[i]]`` for
    each next edge, above ``edges[-1]``: ``len(edges) + 2`` bins, the first and last the tails.
    The edges are the reference's quantiles 0, 1/bins, ..., 1, plus finer ones inside the outer
    bins (TAIL_SPLITS), repeated values merged.
    ``deciles`` index the edges that are the reference's deciles; squares are summed around
    ``center`` (the reference's median) so the variance does not cancel out far from zero."""

    edges: tuple[float, ...]
    deciles: tuple[int, ...]
    center: float

    kind = "numeric"

    @cached_property
    def array(self) -> Floats:
        return np.array(self.edges, dtype=np.float64)


@dataclass(frozen=True)
class CategoricalBins:
    """Counted as: each of ``categories`` (commonest first), then OTHER (the values in
    ``pooled``), then UNSEEN (anything else)."""

    categories: tuple[Value, ...]
    pooled: tuple[Value, ...]

    kind = "categorical"

    @cached_property
    def lookup(self) -> dict[Value, int]:
        """Each category's slot, then each pooled value's (values equal as Python values,
        1 and 1.0 and True, are one: the first)."""
        slots: dict[Value, int] = {}
        for i, value in enumerate((*self.categories, *self.pooled)):
            slots.setdefault(value, i)
        return slots


FeatureBins = NumericBins | CategoricalBins


@dataclass(frozen=True)
class Bins:
    """How each feature of a reference dataset is counted; see :func:`reference`."""

    features: Mapping[str, FeatureBins]

    @cached_property
    def fingerprint(self) -> str:
        """A stable hash of the bins: profiles on equal bins share it."""
        text = json.dumps(self._features_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "fingerprint": self.fingerprint, **self._features_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Bins:
        _check_format(data, "bins")
        features: dict[str, FeatureBins] = {}
        for name, f in data["features"].items():
            if f["kind"] == "numeric":
                edges = tuple(float(e) for e in f["edges"])
                features[name] = NumericBins(edges, tuple(f["deciles"]), float(f["center"]))
            else:
                features[name] = CategoricalBins(tuple(f["categories"]), tuple(f["pooled"]))
        bins = cls(features)
        if bins.fingerprint != data["fingerprint"]:
            raise DataError(
                "bins do not match their fingerprint: the file was edited or is corrupt",
                hint="derive them again from the reference data with reference()",
            )
        return bins

    def _features_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, f in self.features.items():
            if isinstance(f, NumericBins):
                body: dict[str, Any] = {"edges": list(f.edges), "deciles": list(f.deciles)}
                body["center"] = f.center
            else:
                body = {"categories": list(f.categories), "pooled": list(f.pooled)}
            out[name] = {"kind": f.kind, **body}
        return {"features": out}


# ------------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class NumericSummary:
    """One numeric feature of a window: ``count`` finite values, ``nulls`` missing (None, NaN,
    ±inf), ``invalid`` not numbers; ``counts`` per bin of :class:`NumericBins`; the values'
    ``sum``, ``squares`` (sum of ``(x - center)**2``), ``min`` and ``max`` (None without
    values), and the sums of the values in the low and high tail bins."""

    count: int
    nulls: int
    invalid: int
    counts: tuple[int, ...]
    sum: float
    squares: float
    min: float | None
    max: float | None
    low_sum: float
    high_sum: float

    kind = "numeric"

    def __add__(self, other: NumericSummary) -> NumericSummary:
        return NumericSummary(
            self.count + other.count,
            self.nulls + other.nulls,
            self.invalid + other.invalid,
            _add(self.counts, other.counts),
            self.sum + other.sum,
            self.squares + other.squares,
            _pick(min, self.min, other.min),
            _pick(max, self.max, other.max),
            self.low_sum + other.low_sum,
            self.high_sum + other.high_sum,
        )


@dataclass(frozen=True)
class CategoricalSummary:
    """One categorical feature of a window: ``count`` values present, ``nulls`` missing (None,
    NaN); ``counts`` per category of :class:`CategoricalBins`, then OTHER, then UNSEEN."""

    count: int
    nulls: int
    counts: tuple[int, ...]

    kind = "categorical"
    invalid = 0  # any value is a category

    def __add__(self, other: CategoricalSummary) -> CategoricalSummary:
        return CategoricalSummary(
            self.count + other.count, self.nulls + other.nulls, _add(self.counts, other.counts)
        )


Summary = NumericSummary | CategoricalSummary


@dataclass(frozen=True)
class Profile:
    """A window of ``rows`` rows summarised per feature, on the bins named by ``fingerprint``."""

    fingerprint: str
    rows: int
    features: Mapping[str, Summary]

    def to_json(self) -> dict[str, Any]:
        features = {
            name: {"kind": s.kind, **{f.name: _plain(getattr(s, f.name)) for f in fields(s)}}
            for name, s in self.features.items()
        }
        return {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "rows": self.rows,
            "features": features,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        _check_format(data, "profile")
        features: dict[str, Summary] = {}
        for name, f in data["features"].items():
            body: dict[str, Any] = {k: v for k, v in f.items() if k != "kind"}
            body["counts"] = tuple(body["counts"])
            kind = NumericSummary if f["kind"] == "numeric" else CategoricalSummary
            features[name] = kind(**body)
        return cls(data["fingerprint"], int(data["rows"]), features)


def merge(profiles: Iterable[Profile]) -> Profile:
    """One profile of all the windows' rows, as if they had been profiled together.

    >>> bins, ref = reference({"x": list(range(100))})
    >>> merge([ref, ref]).features["x"].count
    200
    """
    items = list(profiles)
    if not items:
        raise DataError("no profiles to merge", hint="pass at least one profile")
    first = items[0]
    for other in items[1:]:
        check_same_bins(first.fingerprint, other.fingerprint, "merge")
    features = dict(first.features)
    for other in items[1:]:
        features = {name: _combine(s, other.features[name]) for name, s in features.items()}
    return replace(first, rows=sum(p.rows for p in items), features=features)


# -------------------------------------------------------------------------------- profiling


def reference(
    frame: Frame,
    *,
    categorical: Collection[str] | None = None,
    bins: int = 100,
    max_categories: int = MAX_CATEGORIES,
) -> tuple[Bins, Profile]:
    """Bins derived from a reference dataset, and its profile on them.

    A column of numbers is numeric unless it has at most 5 distinct values; text, booleans and
    other objects are categorical. ``categorical``, when given, names every categorical
    column: the others must be numbers. ``bins`` quantile bins per numeric feature (a multiple
    of 10 keeps the deciles among the edges); ``max_categories`` per categorical one. Dates and
    times are left out (they move on by nature) unless named in ``categorical``.

    >>> bins, ref = reference({"age": [20.0, 31.5, 47.0, 52.0, 64.0, 70.0], "city": list("aabbbc")})
    >>> bins.features["age"].kind, bins.features["city"].categories
    ('numeric', ('b', 'a', 'c'))
    """
    if bins < 2 or max_categories < 1:
        raise ConfigError(
            f"reference(): bins must be at least 2 and max_categories at least 1, not {bins} "
            f"and {max_categories}",
            hint="the defaults: bins=100 (deciles among the edges), max_categories=200",
        )
    columns, rows = _columns(frame)
    for name in categorical or ():
        if name not in columns:
            hint = did_you_mean(name, columns) or f"columns: {', '.join(columns)}"
            raise DataError(f"categorical names {name!r}, not a column of the reference", hint=hint)

    def one(name: str) -> tuple[FeatureBins, Summary]:
        values = columns[name]
        numeric = name not in categorical if categorical is not None else cols.looks_numeric(values)
        if numeric:
            finite, nulls, invalid = _numbers(values)
            if categorical is not None or _distinct(finite) > CATEGORICAL_BELOW:
                nb = _numeric_bins(finite, bins, name)
                return nb, _numeric_summary(finite, nulls, invalid, nb)
        counts = cols.value_counts(values)
        cb = _categorical_bins(counts, max_categories)
        return cb, _categorical_summary(counts, cb)

    named = set(categorical or ())
    wanted = [name for name in columns if name in named or not cols.is_time(columns[name])]
    made = _each(one, wanted, rows)
    the_bins = Bins({name: fb for name, (fb, _) in made.items()})
    return the_bins, Profile(the_bins.fingerprint, rows, {n: s for n, (_, s) in made.items()})


def profile(frame: Frame, bins: Bins) -> Profile:
    """A window's rows summarised on ``bins``. A feature missing from ``frame`` counts all
    rows as missing; columns ``bins`` does not name are ignored; text in a numeric column
    counts as ``invalid``, never an error.

    >>> bins, _ = reference({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    >>> profile({"x": [2.5, None, "oops", 99.0]}, bins).features["x"]  # doctest: +ELLIPSIS
    NumericSummary(count=2, nulls=1, invalid=1, ...)
    """
    columns, rows = _columns(frame)

    def one(name: str) -> Summary:
        fb, values = bins.features[name], columns.get(name)
        if isinstance(fb, NumericBins):
            finite, nulls, invalid = _numbers(values) if values is not None else (_NONE, rows, 0)
            return _numeric_summary(finite, nulls, invalid, fb)
        counts = (
            cols.value_counts(values) if values is not None else replace(_NO_COUNTS, nulls=rows)
        )
        return _categorical_summary(counts, fb)

    return Profile(bins.fingerprint, rows, _each(one, list(bins.features), rows))


def _each(work: Callable[[str], T], names: list[str], rows: int) -> dict[str, T]:
    """``work`` on each feature, on two threads for big frames (numpy sorts without the GIL)."""
    if rows * len(names) < PARALLEL_FROM or len(names) < 2:
        return {name: work(name) for name in names}
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return dict(zip(names, pool.map(work, names), strict=True))


def _columns(frame: Frame) -> tuple[dict[str, Any], int]:
    if cols.is_frame(frame):
        table: Any = frame
        columns: dict[str, Any] = {str(c): table[c] for c in table.columns}
        return columns, len(table)
    columns = {str(name): cols.column(v) for name, v in frame.items()}
    lengths = {name: len(v) for name, v in columns.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{n}: {k}" for n, k in lengths.items())
        raise DataError(f"columns of different lengths ({shown})", hint="pass whole rows")
    return columns, next(iter(lengths.values()), 0)


# ---------------------------------------------------------------------------------- numbers


def _numbers(values: Any) -> tuple[Floats, int, int]:
    """The column's finite numbers sorted, how many are missing (None, NaN, ±inf) and how many
    are not numbers (text that does not parse as one)."""
    floats = cols.floats(values)
    invalid = 0
    if floats is None:
        items = cols.objects(values)
        floats = cols.coerce(items)
        invalid = int(np.count_nonzero(np.isnan(floats))) - sum(map(cols.is_null, items))
    ordered = np.sort(floats)
    # Sorted: -inf first, then the numbers, then +inf, then NaN.
    start = int(np.searchsorted(ordered, -np.inf, side="right"))
    stop = int(np.searchsorted(ordered, np.inf, side="left"))
    return ordered[start:stop], len(ordered) - (stop - start) - invalid, invalid


def _distinct(ordered: Floats, enough: int = CATEGORICAL_BELOW + 1) -> int:
    """How many distinct values a sorted array has, counting no further than ``enough``."""
    found, start = 0, 0
    while start < len(ordered) and found < enough:
        found += 1
        start = int(np.searchsorted(ordered, ordered[start], side="right"))
    return found


def _numeric_bins(finite: Floats, bins: int, name: str) -> NumericBins:
    if not finite.size:
        raise DataError(
            f"reference column {name!r} has no numbers to bin",
            hint="name it in categorical=, or drop it from the reference",
        )
    # The outer bins split again, ever finer towards the extremes: there a bin would span a
    # long stretch of thin density, which Wasserstein (linear within a bin) misplaces.
    outer = np.array(TAIL_SPLITS) / bins
    q = np.concatenate((np.linspace(0.0, 1.0, bins + 1), outer, 1.0 - outer))
    edges = np.unique(_quantiles(finite, q))
    deciles = np.unique(np.searchsorted(edges, _quantiles(finite, np.arange(1, 10) / 10)))
    center = float(_quantiles(finite, np.array([0.5]))[0])
    return NumericBins(tuple(edges.tolist()), tuple(deciles.tolist()), center)


def _quantiles(ordered: Floats, q: Floats) -> Floats:
    """np.quantile's default (linear) of an already sorted array, without sorting it again."""
    position = q * (len(ordered) - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, len(ordered) - 1)
    t = position - low
    a, b = ordered[low], ordered[high]
    # numpy's lerp: from the nearer end, so that a quantile never leaves [a, b]
    out: Floats = np.where(t < 0.5, a + (b - a) * t, b - (b - a) * (1 - t))
    return out


def _numeric_summary(finite: Floats, nulls: int, invalid: int, nb: NumericBins) -> NumericSummary:
    """Counts of sorted finite values in the bins, and their sums."""
    n = len(finite)
    edges = nb.array
    below = int(np.searchsorted(finite, edges[0], side="left"))
    at_most = np.searchsorted(finite, edges, side="right")
    cumulative = np.concatenate(([0, below], at_most, [n]))
    return NumericSummary(
        count=n,
        nulls=nulls,
        invalid=invalid,
        counts=tuple(np.diff(cumulative).tolist()),
        sum=float(finite.sum()),
        squares=_squares(finite, nb.center),
        min=float(finite[0]) if n else None,
        max=float(finite[-1]) if n else None,
        low_sum=float(finite[:below].sum()),
        high_sum=float(finite[int(at_most[-1]) :].sum()),
    )


def _squares(values: Floats, center: float) -> float:
    """Sum of ``(x - center)**2``, a cache-sized chunk at a time (no array of the deviations)."""
    total, scratch = 0.0, np.empty(min(CHUNK, len(values)))
    for start in range(0, len(values), CHUNK):
        part = values[start : start + CHUNK]
        deviations = np.subtract(part, center, out=scratch[: len(part)])
        # not np.dot: BLAS threads contend with the features' own threads
        total += float(np.square(deviations, out=deviations).sum())
    return total


# ------------------------------------------------------------------------------- categories


def _categorical_bins(counts: cols.Counts, keep: int) -> CategoricalBins:
    values = [_category(v) for v in counts.values]
    tally = counts.counts.tolist()
    ranked = sorted(zip(values, tally, strict=True), key=lambda vc: (-vc[1], str(vc[0])))
    ordered = tuple(dict.fromkeys(v for v, _ in ranked))  # values equal once made plain: once
    return CategoricalBins(ordered[:keep], ordered[keep : keep + MAX_POOLED])


def _category(value: Any) -> Value:
    """A plain Python value (numpy scalars converted) that JSON keeps as it is."""
    plain = value.item() if isinstance(value, np.generic) else value
    if isinstance(plain, str | bool | int | float):
        return plain
    return str(plain)


def _categorical_summary(counts: cols.Counts, cb: CategoricalBins) -> CategoricalSummary:
    kept = len(cb.categories)
    slots = np.zeros(kept + 2, dtype=np.int64)
    if len(counts.values):
        lookup = cb.lookup
        where = np.fromiter(
            (lookup.get(_category(v), -1) for v in counts.values), np.int64, len(counts.values)
        )
        # a kept category counts as itself, a pooled one as OTHER, anything else as UNSEEN
        bucket = np.where(where < 0, kept + 1, np.minimum(where, kept))
        np.add.at(slots, bucket, counts.counts)
    return CategoricalSummary(int(slots.sum()), counts.nulls, tuple(slots.tolist()))


# ---------------------------------------------------------------------------------- helpers


def _add(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _pick(choose: Any, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return b if a is None else a
    return float(choose(a, b))


def _combine(a: Summary, b: Summary) -> Summary:
    if isinstance(a, NumericSummary) and isinstance(b, NumericSummary):
        return a + b
    if isinstance(a, CategoricalSummary) and isinstance(b, CategoricalSummary):
        return a + b
    raise DataError(f"cannot merge a {a.kind} summary with a {b.kind} one")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _check_format(data: Mapping[str, Any], what: str) -> None:
    if data.get("format") != FORMAT:
        raise DataError(
            f"unknown {what} format {data.get('format')!r} (this conveyor reads {FORMAT})",
            hint="upgrade conveyor, or derive the reference again",
        )
