"""A dataset's schema: what each column holds, inferred from data, checked against data.

    schema = infer(frame)              # types, nullability, ranges, category sets, uniqueness
    text = dump(schema)                # commented YAML a user edits and commits
    problems = validate(other, load(Path("schema.yaml")))

:func:`infer` and :func:`validate` are pure functions over DataFrames; :func:`load` and
:func:`dump` are the YAML edge. pandas is imported inside the functions that need it, so a
schema file can be read (and its mistakes reported) without it. The rules and the inference
rules are described in docs/data-validation.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

if TYPE_CHECKING:
    import pandas as pd

TYPES = ("integer", "float", "boolean", "string", "datetime")
EXTRA_COLUMNS = ("ignore", "warn", "error")
COLUMN_KEYS = (
    "type",
    "nullable",
    "null_fraction",
    "max_null_fraction",
    "unique",
    "min",
    "max",
    "categories",
)
TOP_KEYS = ("rows", "extra_columns", "columns")

Bound = int | float | str  # a datetime bound is an ISO 8601 string
Category = int | float | str

HEADER = """\
# conveyor data schema{source}.
# Edit it freely: delete a rule to stop checking it, widen a range, add a category.
# Per column: type (integer, float, boolean, string, datetime), nullable, max_null_fraction,
# unique, min, max, categories. null_fraction is what was observed: informative, not checked.
# rows: the accepted row count. extra_columns: ignore, warn or error for columns not listed.
# Check data with: conveyor schema validate DATA SCHEMA   (docs/data-validation.md)
"""


@dataclass(frozen=True)
class Column:
    """The rules for one column; a rule left as None (or False) is not checked."""

    name: str
    type: str
    nullable: bool = True
    null_fraction: float | None = None  # observed when inferred; informative only
    max_null_fraction: float | None = None
    unique: bool = False
    min: Bound | None = None
    max: Bound | None = None
    categories: tuple[Category, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "nullable": self.nullable}
        for key in ("null_fraction", "max_null_fraction", "min", "max"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.unique:
            out["unique"] = True
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return {k: out[k] for k in COLUMN_KEYS if k in out}


@dataclass(frozen=True)
class Schema:
    columns: tuple[Column, ...]
    min_rows: int | None = None
    max_rows: int | None = None
    extra_columns: str = "warn"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.min_rows is not None or self.max_rows is not None:
            rows = {"min": self.min_rows, "max": self.max_rows}
            out["rows"] = {k: v for k, v in rows.items() if v is not None}
        out["extra_columns"] = self.extra_columns
        out["columns"] = {c.name: c.to_dict() for c in self.columns}
        return out

    @classmethod
    def from_dict(cls, data: Any, located: yamlio.Located | None = None) -> Schema:
        """The schema in ``data`` (as :meth:`to_dict` writes it); ConfigError names the key
        (and, given the parsed file, the file and line) of the first mistake."""
        return _Parser(located or yamlio.Located(data, {}, "schema")).schema(data)


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``count`` values (or rows) of ``column`` break ``rule``.

    ``column`` is None for a table rule (``rows``); ``severity`` is ``error`` or ``warning``
    (an unexpected column, unless the schema says ``extra_columns: error``).
    """

    column: str | None
    rule: str
    count: int
    detail: str
    severity: str = field(default="error")

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "rule": self.rule,
            "count": self.count,
            "detail": self.detail,
            "severity": self.severity,
        }


# ---------------------------------------------------------------------------------- YAML edge


def load(path: Path, display: str | None = None) -> Schema:
    """The schema in a YAML file; ConfigError names the file, the line and the key."""
    located = yamlio.load_file(path, display)
    return Schema.from_dict(located.data, located)


def dump(schema: Schema, *, source: str | None = None) -> str:
    """YAML for ``schema``: a comment on how to edit it, then rows, then columns in order."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def flow_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)

    def flow_rows(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
        return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)

    Dumper.add_representer(list, flow_list)
    Dumper.add_representer(_Flow, flow_rows)
    data = schema.to_dict()
    if "rows" in data:
        data["rows"] = _Flow(data["rows"])
    body = yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=100)
    return HEADER.format(source=f", inferred from {source}" if source else "") + body


class _Flow(dict[str, Any]):
    """A mapping written on one line."""


class _Parser:
    def __init__(self, located: yamlio.Located) -> None:
        self.located = located

    def fail(self, keys: tuple[str, ...], problem: str, hint: str | None = None) -> ConfigError:
        where = self.located.where(*keys)
        return ConfigError(f"{where}: {'.'.join(keys) or 'schema'}: {problem}", hint=hint)

    def schema(self, data: Any) -> Schema:
        if not isinstance(data, dict):
            raise self.fail((), "expected a mapping with columns:", hint=_INFER_HINT)
        self.unknown(data, TOP_KEYS, ())
        columns = data.get("columns")
        if not isinstance(columns, dict) or not columns:
            raise self.fail(("columns",), "expected a mapping of column name to rules")
        extra = data.get("extra_columns", "warn")
        if extra not in EXTRA_COLUMNS:
            raise self.fail(
                ("extra_columns",), f"{extra!r} is not one of {', '.join(EXTRA_COLUMNS)}"
            )
        min_rows, max_rows = self.rows(data.get("rows"))
        parsed = tuple(self.column(str(name), body) for name, body in columns.items())
        return Schema(parsed, min_rows, max_rows, extra)

    def rows(self, rows: Any) -> tuple[int | None, int | None]:
        if rows is None:
            return None, None
        if not isinstance(rows, dict):
            raise self.fail(("rows",), "expected {min: N, max: N}")
        self.unknown(rows, ("min", "max"), ("rows",))
        bounds = []
        for key in ("min", "max"):
            value = rows.get(key)
            if value is not None and (type(value) is not int or value < 0):
                raise self.fail(("rows", key), f"expected a row count, not {value!r}")
            bounds.append(value)
        if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
            raise self.fail(("rows",), f"min {bounds[0]} is above max {bounds[1]}")
        return bounds[0], bounds[1]

    def column(self, name: str, body: Any) -> Column:
        at = ("columns", name)
        if not isinstance(body, dict):
            raise self.fail(at, "expected a mapping of rules, at least {type: ...}")
        self.unknown(body, COLUMN_KEYS, at)
        kind = body.get("type")
        if kind not in TYPES:
            hint = did_you_mean(str(kind), TYPES) if isinstance(kind, str) else None
            raise self.fail((*at, "type"), f"{kind!r} is not one of {', '.join(TYPES)}", hint)
        for key in ("nullable", "unique"):
            if not isinstance(body.get(key, False), bool):
                raise self.fail((*at, key), f"expected true or false, not {body[key]!r}")
        for key in ("null_fraction", "max_null_fraction"):
            value = body.get(key)
            if value is not None and not (_is_number(value) and 0 <= value <= 1):
                raise self.fail((*at, key), f"expected a fraction from 0 to 1, not {value!r}")
        low, high = (self.bound(kind, body.get(k), (*at, k)) for k in ("min", "max"))
        if low is not None and high is not None and _above(low, high):
            raise self.fail(at, f"min {low!r} is above max {high!r}")
        return Column(
            name=name,
            type=kind,
            nullable=body.get("nullable", True),
            null_fraction=body.get("null_fraction"),
            max_null_fraction=body.get("max_null_fraction"),
            unique=body.get("unique", False),
            min=low,
            max=high,
            categories=self.categories(kind, body.get("categories"), (*at, "categories")),
        )

    def bound(self, kind: str, value: Any, at: tuple[str, ...]) -> Bound | None:
        if value is None:
            return None
        if kind in ("integer", "float"):
            if not _is_number(value):
                raise self.fail(at, f"expected a number, not {value!r}")
            return int(value) if kind == "integer" and float(value).is_integer() else value
        if kind == "datetime":
            if isinstance(value, date):  # written without quotes, YAML reads a date
                return value.isoformat()
            try:
                datetime.fromisoformat(str(value))
            except ValueError:
                raise self.fail(at, f"{value!r} is not an ISO 8601 date or time") from None
            return str(value)
        raise self.fail(at, f"a {kind} column has no {at[-1]}: it applies to numbers and dates")

    def categories(self, kind: str, value: Any, at: tuple[str, ...]) -> tuple[Category, ...] | None:
        if value is None:
            return None
        if kind not in ("string", "integer", "float"):
            raise self.fail(at, f"a {kind} column has no categories")
        if not isinstance(value, list) or not value:
            raise self.fail(at, "expected a list of the allowed values")
        for item in value:
            if kind == "string" and not isinstance(item, str):
                raise self.fail(
                    at,
                    f"{item!r} is not text",
                    hint="quote it: unquoted, YAML reads yes/no/on/off/true/false and "
                    "numbers as something other than text",
                )
            if kind != "string" and not _is_number(item):
                raise self.fail(at, f"{item!r} is not a number")
            if kind == "integer" and not float(item).is_integer():
                raise self.fail(at, f"{item!r} is not an integer")
        if kind == "integer":
            return tuple(int(v) for v in value)
        return tuple(value)

    def unknown(self, data: dict[Any, Any], known: tuple[str, ...], at: tuple[str, ...]) -> None:
        for key in data:
            if key not in known:
                hint = did_you_mean(str(key), known) or f"known keys: {', '.join(known)}"
                raise self.fail((*at, str(key)), "unknown key", hint)


_INFER_HINT = "write one with `conveyor schema infer DATA -o schema.yaml`"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _above(low: Bound, high: Bound) -> bool:
    if isinstance(low, str) and isinstance(high, str):
        try:
            return datetime.fromisoformat(low) > datetime.fromisoformat(high)
        except TypeError:  # one with a time zone, one without: leave it to the data
            return False
    return bool(low > high)  # type: ignore[operator]


# ---------------------------------------------------------------------------------- inference


def infer(
    frame: pd.DataFrame, *, max_categories: int = 20, slack: float = 0.1, row_factor: float = 2.0
) -> Schema:
    """The schema ``frame`` satisfies, loosened so that more data of its kind does too.

    - type: from the dtype; a float column whose values are all whole numbers and that has
      nulls is ``integer`` (CSV readers turn integers with gaps into floats); text that is all
      ISO 8601 dates or times is ``datetime``.
    - nullable: whether any value is null; null_fraction records how many were.
    - min/max (numbers, dates): the observed range widened by ``slack`` times its width on
      each side, not below zero when no value was; integers widen to whole numbers.
    - categories (text and integers): the set of values, when there are at most
      ``max_categories`` of them and each is seen twice on average.
    - unique (text and integers): every value distinct (floats are distinct by accident).
    - rows: from ``n / row_factor`` to ``n * row_factor``.

    >>> import pandas as pd
    >>> infer(pd.DataFrame({"a": [1, 2, 2, 1]})).columns[0].categories
    (1, 2)
    """
    columns = tuple(
        _infer_column(str(name), frame[name], max_categories, slack) for name in frame.columns
    )
    n = len(frame)
    return Schema(columns, math.floor(n / row_factor), math.ceil(n * row_factor))


def _infer_column(name: str, series: pd.Series, max_categories: int, slack: float) -> Column:
    import pandas as pd

    kind = _infer_type(series)
    values = series.dropna()
    nulls = len(series) - len(values)
    null_fraction = round(nulls / len(series), 6) if len(series) else 0.0
    column = Column(name, kind, nullable=nulls > 0, null_fraction=null_fraction or None)
    if values.empty or kind == "boolean":
        return column
    low: Bound | None = None
    high: Bound | None = None
    if kind == "integer":
        whole = pd.to_numeric(values).astype("int64")
        low, high = _widen(int(whole.min()), int(whole.max()), slack)
    elif kind == "float":
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        finite = numbers[numbers.abs() != math.inf]
        if not finite.empty:
            low, high = _widen(float(finite.min()), float(finite.max()), slack)
            # An infinity already seen would break a bound: leave that side open.
            low = None if bool((numbers == -math.inf).any()) else low
            high = None if bool((numbers == math.inf).any()) else high
    elif kind == "datetime":
        stamps = _as_datetime(values)
        start, end = stamps.min(), stamps.max()
        pad = (end - start) * slack
        if bool((stamps == stamps.dt.normalize()).all()):  # dates, not times: whole days
            low = (start - pad).floor("D").date().isoformat()
            high = (end + pad).ceil("D").date().isoformat()
        else:
            low = (start - pad).floor("s").isoformat()
            high = (end + pad).ceil("s").isoformat()
    categories: tuple[Category, ...] | None = None
    unique = False
    if kind in ("string", "integer"):
        keyed = values.astype(str) if kind == "string" else values.astype("int64")
        distinct = keyed.nunique()
        if distinct <= max_categories and distinct * 2 <= len(keyed):
            found = keyed.unique().tolist()
            categories = tuple(sorted(str(v) if kind == "string" else int(v) for v in found))
        unique = distinct == len(keyed) and len(keyed) > 1
    return Column(
        name,
        kind,
        nullable=column.nullable,
        null_fraction=column.null_fraction,
        unique=unique,
        min=low,
        max=high,
        categories=categories,
    )


def _infer_type(series: pd.Series) -> str:
    import pandas as pd

    kind = series.dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "integer"
    if kind == "M":
        return "datetime"
    if kind == "f":
        values = series.dropna()
        whole = (
            len(values) < len(series)
            and bool((values == values.round()).all())
            and bool((values.abs() != math.inf).all())
        )
        return "integer" if whole and not values.empty else "float"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "boolean":
        return "boolean"
    if inferred == "integer":
        return "integer"
    if inferred in ("floating", "mixed-integer-float"):
        return "float"
    if inferred in ("datetime", "datetime64", "date"):
        return "datetime"
    if inferred == "string" and _all_dates(series.dropna()):
        return "datetime"
    return "string"


def _all_dates(values: pd.Series) -> bool:
    if values.empty:
        return False
    # A cheap look at the first thousand before parsing them all.
    head = values.iloc[:1000]
    return bool(_as_datetime(head).notna().all()) and bool(_as_datetime(values).notna().all())


def _as_datetime(values: pd.Series) -> pd.Series:
    """Dates and times as naive UTC timestamps (NaT where a value is not one)."""
    import pandas as pd

    if values.dtype.kind == "M":
        tz = getattr(values.dt, "tz", None)
        return values.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else values
    if values.dtype.kind in "iufb":
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    try:
        parsed = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)
    except (TypeError, ValueError, OverflowError):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    return parsed.dt.tz_localize(None)


def _widen(low: float, high: float, slack: float) -> tuple[Bound, Bound]:
    """``[low, high]`` widened by ``slack`` of its width each side, never below zero if
    ``low`` was not; integers stay integers (computed exactly, however large)."""
    pad = (high - low) * slack
    below = min(pad, low) if low >= 0 else pad
    if isinstance(low, int) and isinstance(high, int):
        return low - math.ceil(below), high + math.ceil(pad)
    return _rounded(low - below, low, down=True), _rounded(high + pad, high, down=False)


def _rounded(x: float, limit: float, *, down: bool) -> float:
    """``x`` to six significant digits, but never past ``limit`` (the data it must bound)."""
    if x == 0 or not math.isfinite(x):
        return x
    step = 10.0 ** (math.floor(math.log10(abs(x))) - 5)
    rounded = float(f"{x:.6g}")
    if down and rounded > limit:
        rounded = float(f"{rounded - step:.6g}")
    elif not down and rounded < limit:
        rounded = float(f"{rounded + step:.6g}")
    return rounded


# ---------------------------------------------------------------------------------- validation


def validate(frame: pd.DataFrame, schema: Schema) -> list[Violation]:
    """Every rule of ``schema`` that ``frame`` breaks, with how many values break it.

    Vectorised per column: a million rows of twenty columns take about a second.

    >>> import pandas as pd
    >>> rules = Schema((Column("age", "integer", max=120),))
    >>> [v.detail for v in validate(pd.DataFrame({"age": [30, 150]}), rules)]
    ['1 value above 120 (largest 150)']
    """
    out: list[Violation] = []
    n = len(frame)
    low, high = schema.min_rows, schema.max_rows
    if (low is not None and n < low) or (high is not None and n > high):
        expected = f"{low if low is not None else 0} to {high if high is not None else 'any'}"
        out.append(Violation(None, "rows", n, f"{n} rows, expected {expected}"))
    present = {str(name): name for name in frame.columns}
    for column in schema.columns:
        if column.name not in present:
            out.append(Violation(column.name, "missing column", n, "not in the data"))
        else:
            out.extend(_check_column(frame[present[column.name]], column))
    if schema.extra_columns != "ignore":
        severity = "error" if schema.extra_columns == "error" else "warning"
        for name in present:
            if schema.column(name) is None:
                detail = "not in the schema"
                out.append(Violation(name, "unexpected column", n, detail, severity))
    return out


def broken_rows(frame: pd.DataFrame, schema: Schema) -> pd.Series:
    """Which rows of ``frame`` break a value rule of ``schema`` (a missing value where none is
    allowed, a value of another type, out of range, not in the category set), for monitoring:
    the share of live rows a data gate's schema refuses. Table rules (row counts, uniqueness,
    missing or extra columns) say nothing of one row and are left out.

    >>> import pandas as pd
    >>> rules = Schema((Column("age", "integer", max=120),))
    >>> broken_rows(pd.DataFrame({"age": [30, 150, "x"]}), rules).tolist()
    [False, True, True]
    """
    import pandas as pd

    broken = pd.Series(False, index=frame.index)
    for column in schema.columns:
        if column.name not in frame.columns:
            continue
        series = frame[column.name]
        present = series.notna()
        if not column.nullable:
            broken |= ~present
        values = series[present]
        if values.empty:
            continue
        typed, bad = _typed(values, column.type)
        if bad is not None:
            broken.loc[bad[bad].index] = True
            typed = typed[~bad]
        for rule, bound in (("min", column.min), ("max", column.max)):
            if bound is not None and not typed.empty:
                limit = _limit(bound, column.type)
                outside = typed < limit if rule == "min" else typed > limit
                broken.loc[outside[outside].index] = True
        if column.categories is not None and not typed.empty:
            keyed = _text(typed) if column.type == "string" else typed
            outside = ~keyed.isin(list(column.categories))
            broken.loc[outside[outside].index] = True
    return broken


def _check_column(series: pd.Series, column: Column) -> list[Violation]:
    name = column.name
    out: list[Violation] = []
    present = series.notna()
    values = series[present]
    nulls = len(series) - len(values)
    if nulls and not column.nullable:
        out.append(Violation(name, "nullable", nulls, f"{_n(nulls)} missing"))
    if column.max_null_fraction is not None and len(series):
        fraction = nulls / len(series)
        if fraction > column.max_null_fraction:
            detail = f"{fraction:.1%} missing, at most {column.max_null_fraction:.1%} allowed"
            out.append(Violation(name, "max_null_fraction", nulls, detail))
    if values.empty:
        return out
    typed, bad = _typed(values, column.type)
    if bad is not None and bool(bad.any()):
        count = int(bad.sum())
        detail = f"{_n(count)} not {_a(column.type)}, e.g. {_examples(values[bad])}"
        out.append(Violation(name, "type", count, detail))
        typed = typed[~bad]
    out.extend(_check_range(typed, column))
    if column.categories is not None:
        keyed = _text(typed) if column.type == "string" else typed
        outside = ~keyed.isin(list(column.categories))
        if bool(outside.any()):
            count = int(outside.sum())
            counts = keyed[outside].value_counts()
            shown = ", ".join(f"{v!r} ({c})" for v, c in counts.iloc[:3].items())
            more = f" and {len(counts) - 3} more" if len(counts) > 3 else ""
            detail = f"{_n(count)} not in the set: {shown}{more}"
            out.append(Violation(name, "categories", count, detail))
    if column.unique:
        repeated = typed.duplicated(keep="first")
        if bool(repeated.any()):
            count = int(repeated.sum())
            detail = f"{_n(count, 'repeated value')}, e.g. {_examples(typed[repeated])}"
            out.append(Violation(name, "unique", count, detail))
    return out


def _typed(values: pd.Series, kind: str) -> tuple[pd.Series, pd.Series | None]:
    """Non-null ``values`` as ``kind`` (numbers, timestamps or text), and which do not parse."""
    import pandas as pd

    dtype = values.dtype.kind
    if kind == "string":
        return values, None
    if kind == "datetime":
        stamps = _as_datetime(values)
        return stamps, stamps.isna()
    if kind == "boolean":
        if dtype == "b":
            return values, None
        if dtype in "iuf":
            return values, ~values.isin([0, 1])
        return values, ~_text(values).str.lower().isin(_BOOLEAN_WORDS)
    if dtype in "iu":
        return values, None
    if dtype == "b":
        return values, pd.Series(True, index=values.index)
    numbers = values if dtype == "f" else pd.to_numeric(values, errors="coerce")
    numbers = numbers.astype("float64")
    bad = numbers.isna()
    if kind == "integer":
        bad |= (numbers != numbers.round()) | (numbers.abs() == math.inf)
    return numbers, bad


_BOOLEAN_WORDS = ["true", "false", "1", "0", "1.0", "0.0", "yes", "no", "t", "f"]


def _check_range(typed: pd.Series, column: Column) -> list[Violation]:
    out = []
    for rule, bound in (("min", column.min), ("max", column.max)):
        if bound is None or typed.empty:
            continue
        limit = _limit(bound, column.type)
        outside = typed < limit if rule == "min" else typed > limit
        if bool(outside.any()):
            count = int(outside.sum())
            extreme = typed[outside].min() if rule == "min" else typed[outside].max()
            word, which = ("below", "smallest") if rule == "min" else ("above", "largest")
            detail = f"{_n(count)} {word} {_show(limit)} ({which} {_show(extreme)})"
            out.append(Violation(column.name, rule, count, detail))
    return out


def _limit(bound: Bound, kind: str) -> Any:
    if kind != "datetime":
        return bound
    import pandas as pd

    stamp = pd.Timestamp(bound)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tz is not None else stamp


def _text(values: pd.Series) -> pd.Series:
    """Values as text; whole floats (integers a CSV reader widened) without the ``.0``."""
    if values.dtype.kind == "f" and bool((values == values.round()).all()):
        return values.astype("int64").astype(str)
    return values.astype(str)


def _show(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _examples(values: pd.Series) -> str:
    shown = [repr(_plain(v)) for v in values.drop_duplicates().iloc[:3]]
    return ", ".join(shown)


def _plain(value: Any) -> Any:
    """A value as it prints best: ``3`` for ``np.int64(3)`` and for a whole float."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _n(count: int, noun: str = "value") -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
