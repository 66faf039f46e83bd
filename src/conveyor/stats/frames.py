"""Drift of every column of two DataFrames: each column's kind read from the reference's
dtype, then :mod:`conveyor.stats.drift` on its values.

    compare(train_frame, eval_frame)               # -> [ColumnDrift, ...]

Pure: pandas is only touched through the frames the caller passes in (and imported on first
use for parsing dates), no files, no clock.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from conveyor.foundation.errors import DataError
from conveyor.foundation.suggest import did_you_mean
from conveyor.stats.drift import (
    RULES,
    ColumnDrift,
    DriftRules,
    Floats,
    categorical_counts_drift,
    numeric_drift,
)

if TYPE_CHECKING:
    import pandas as pd


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Iterable[str] | None = None,
    rules: DriftRules = RULES,
) -> list[ColumnDrift]:
    """Drift of each column of ``reference`` (or of ``columns``) in ``current``.

    The kind follows the reference's dtype: booleans, text and numbers with at most
    ``rules.categorical_below`` distinct values are categorical, other numbers numeric. Unless
    named in ``columns``, dates and times (they move on by nature) and text whose every value
    is distinct (an identifier) are ``skipped``. A column missing from one side is inconclusive.
    """
    ref_names = {str(c): c for c in reference.columns}
    cur_names = {str(c): c for c in current.columns}
    named = columns is not None
    wanted = list(columns) if columns is not None else list(ref_names)
    for name in wanted:
        if name not in ref_names and name not in cur_names:
            hint = did_you_mean(name, ref_names) or f"columns: {', '.join(ref_names)}"
            raise DataError(f"no column {name!r} in either dataset", hint=hint)
    out = []
    for name in wanted:
        if name not in ref_names or name not in cur_names:
            side = "reference" if name not in ref_names else "current"
            out.append(_absent(name, f"not in the {side} data"))
            continue
        ref, cur = reference[ref_names[name]], current[cur_names[name]]
        kind, why = column_kind(ref, rules)
        if why is not None and not named:
            out.append(ColumnDrift(name, kind, "skipped", {}, (why,), 0, 0))
        elif kind == "categorical":
            ref_counts, ref_missing = _series_counts(ref)
            cur_counts, cur_missing = _series_counts(cur)
            out.append(
                categorical_counts_drift(
                    ref_counts, ref_missing, cur_counts, cur_missing, column=name, rules=rules
                )
            )
        else:
            dates = kind == "datetime"
            ref_numbers, cur_numbers = _numbers(ref, dates), _numbers(cur, dates)
            out.append(numeric_drift(ref_numbers, cur_numbers, column=name, rules=rules))
    return out


def column_kind(series: pd.Series, rules: DriftRules = RULES) -> tuple[str, str | None]:
    """How :func:`compare` treats a reference column: ``numeric``, ``categorical`` or
    ``datetime`` (compared as numbers of seconds), and why it is skipped unless named."""
    kind = series.dtype.kind
    if kind == "b":
        return "categorical", None
    if kind in "iuf":
        few = series.nunique(dropna=True) <= rules.categorical_below
        return ("categorical", None) if few else ("numeric", None)
    if kind == "m":
        return "numeric", None
    if kind == "M" or _dates(series):
        return "datetime", "dates and times move on by nature; name the column to compare it"
    present = series.dropna()
    if len(present) >= rules.min_samples and present.nunique() == len(present):
        return "categorical", "every value is distinct (an identifier?); name it to compare it"
    return "categorical", None


def _dates(series: pd.Series) -> bool:
    """Text that is ISO 8601 dates or times (judged on the first hundred values)."""
    import pandas as pd

    head = series.dropna().iloc[:100]
    if head.empty or pd.api.types.infer_dtype(head) not in ("string", "datetime", "date"):
        return False
    stamps = pd.to_datetime(head, errors="coerce", format="ISO8601", utc=True)
    return bool(stamps.notna().all())


def _absent(name: str, why: str) -> ColumnDrift:
    return ColumnDrift(name, "-", "inconclusive", {}, (why,), 0, 0)


def _series_counts(series: pd.Series) -> tuple[dict[Hashable, int], int]:
    counts = series.value_counts(dropna=True)
    counts = counts[counts > 0]  # a categorical dtype lists its unused categories too
    return dict(zip(counts.index.tolist(), counts.tolist(), strict=True)), int(series.isna().sum())


def _numbers(series: pd.Series, dates: bool) -> Floats:
    """Numbers (times and durations as seconds); what does not parse is missing."""
    import pandas as pd

    kind = series.dtype.kind
    if kind == "m":
        series = series.dt.total_seconds()
    elif dates:
        stamps = pd.to_datetime(series, errors="coerce", format="ISO8601", utc=True)
        series = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    elif kind not in "iufb":
        series = pd.to_numeric(series, errors="coerce")
    return np.asarray(series.to_numpy(dtype="float64", na_value=np.nan))
