"""The monitor profiles the same with pandas and without it: the same inputs run with pandas
hidden (an import of it fails, as in a serving install) give profiles whose JSON is equal."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.monitor import columns, tablefile
from conveyor.monitor.profiles import profile, reference
from conveyor.stats import binned

CSV = b"""\
a,b,c,d,e,f,g,a,,h,i
1,1.5,x,True,7, 3 ,inf,1,NA,2,1.0
2,,y,False,,4,-Infinity,2,,2,x
+3,2,,TRUE,9,5,nan,3,,3,2.5
007,3,z,,10,6,1,4,,2,3
5,4.25,x,true,11,7,2,5,,3,4
6,1e3,y,False,12,8,3,6,,2,oops
"""


def _hide_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # type: ignore[arg-type]
    monkeypatch.setattr(columns, "_pandas_installed", lambda: False)


def _as_json(columns_: dict[str, Any], categorical: list[str] | None = None) -> str:
    profiled = {k: v for k, v in columns_.items() if k != "Unnamed: 8"}  # no values at all
    bins, ref = reference(profiled, categorical=categorical)
    return json.dumps([bins.to_json(), ref.to_json()], sort_keys=True)


@pytest.fixture
def rows() -> dict[str, list[Any]]:
    """A window's columns as the monitor gathers them from logged JSON rows."""
    rng = np.random.default_rng(3)
    n = 300
    return {
        "x": [float(v) for v in rng.normal(size=n)],
        "k": [int(v) for v in rng.integers(0, 4, n)],
        "mixed": [None if i % 17 == 0 else ("bad" if i % 29 == 0 else float(i)) for i in range(n)],
        "city": [
            str(rng.choice(["ams", "ber", "cph", "dub"])) if i % 11 else None for i in range(n)
        ],
        "flag": [bool(v) for v in rng.integers(0, 2, n)],
        "ints_none": [None if i % 7 == 0 else i % 3 for i in range(n)],
        "nested": [[i % 2] for i in range(n)],
    }


def test_a_csv_read_with_and_without_pandas_profiles_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names, with_pandas = tablefile.read(CSV, "ref.csv")
    assert all(columns.is_series(c) for c in with_pandas.values())
    expected = _as_json(with_pandas)
    _hide_pandas(monkeypatch)
    names_without, without = tablefile.read(CSV, "ref.csv")
    assert names_without == names == ["a", "b", "c", "d", "e", "f", "g", "a.1", "Unnamed: 8",
                                      "h", "i"]  # fmt: skip
    assert not any(columns.is_series(c) for c in without.values())
    assert _as_json(without) == expected
    monkeypatch.undo()
    expected = _as_json(with_pandas, categorical=["a", "c", "h", "d"])
    _hide_pandas(monkeypatch)
    assert _as_json(without, categorical=["a", "c", "h", "d"]) == expected


def test_the_csv_columns_are_typed_as_pandas_types_them(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.read_csv(io.BytesIO(CSV))
    _hide_pandas(monkeypatch)
    _, without = tablefile.read(CSV, "ref.csv")
    for name, values in without.items():
        theirs = frame[name]
        assert values.dtype.kind == (theirs.dtype.kind if theirs.dtype.kind != "O" else "O"), name
        mine = [None if columns.is_null(v) else v for v in values.tolist()]
        assert mine == [None if columns.is_null(v) else v for v in theirs.tolist()], name


def test_integers_past_int64_read_as_text_as_pandas_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    huge = "7" * 5000  # int() refuses more than 4,300 digits: never parsed, no traceback
    raw = f"a,b,c\n{huge},1,{'9' * 25}\n2,2,3\n".encode()
    frame = pd.read_csv(io.BytesIO(raw))
    _hide_pandas(monkeypatch)
    names, without = tablefile.read(raw, "ref.csv")
    assert names == ["a", "b", "c"]
    assert without["a"].dtype.kind == frame["a"].dtype.kind == "O"
    assert without["a"].tolist() == [huge, "2"]
    assert without["b"].dtype == np.int64
    assert without["c"].dtype.kind == frame["c"].dtype.kind == "O"


def test_big_counts_through_pandas_equal_the_counts_without(
    monkeypatch: pytest.MonkeyPatch, rows: dict[str, list[Any]]
) -> None:
    bins, _ = reference(rows)
    monkeypatch.setattr(columns, "PANDAS_FROM", 0)  # every count of objects through pandas
    expected = json.dumps(profile(rows, bins).to_json())
    _hide_pandas(monkeypatch)
    assert json.dumps(profile(rows, bins).to_json()) == expected
    assert _as_json(rows) == json.dumps(
        [bins.to_json(), reference(rows)[1].to_json()], sort_keys=True
    )


def test_a_frame_profiles_as_its_columns_as_lists(rows: dict[str, list[Any]]) -> None:
    plain = {k: v for k, v in rows.items() if k != "nested"}
    frame = pd.DataFrame(plain)
    assert _as_json(dict(frame.items())) == _as_json(plain)
    bins, _ = reference(plain)
    assert profile(frame, bins) == profile(plain, bins)


def test_pandas_helpers_are_mirrored() -> None:
    values = [True, "x", "3", " 3 ", "1_000", "0x10", "1e5", "inf", "-Infinity", "nan", "", "+3",
              ".5", "5.", "1e", "١٢", "True", None, math.nan, 2, 2.5, b"3", "INF", [1],
              "1 2"]  # fmt: skip
    objects = np.array(values, dtype=object)
    ours = columns.coerce(objects)
    theirs = pd.to_numeric(pd.Series(objects), errors="coerce").to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(ours, theirs)
    for sample in ([1, "a"], [1.5, "a"], [True, 1], [None, None], [math.nan, "a"], [1, 2.5],
                   ["1", "2"], [b"a"], [1, None], [True, None]):  # fmt: skip
        kind = pd.api.types.infer_dtype(sample, skipna=True)
        numeric = kind in ("floating", "integer", "mixed-integer-float", "decimal")
        assert columns.looks_numeric(np.array(sample, dtype=object)) in (
            [numeric] if kind not in ("mixed", "mixed-integer") else [True, False]
        ), sample
        as_objects = np.array(sample, dtype=object)
        mostly = [*sample * 10, "text"]  # a mix, mostly numbers when the sample's are
        for values in (sample, mostly):
            told = columns.looks_numeric(pd.Series(values, dtype=object))  # by pandas
            assert told == columns.looks_numeric(np.array(values, dtype=object)), values
        assert columns.looks_numeric(as_objects) is not None
        series = pd.Series(sample)
        column = columns.column(sample)
        assert column.dtype.kind == series.dtype.kind or series.dtype.kind == "O", sample


@pytest.fixture
def parquet(tmp_path: Any) -> Iterator[bytes]:
    frame = pd.DataFrame(
        {
            "x": [1.5, None, 3.0, 4.0, 5.0, 6.5, 7.0],
            "n": pd.array([1, 2, None, 4, 5, 6, 7], dtype="Int64"),
            "i": [1, 2, 3, 4, 5, 6, 7],
            "s": ["a", None, "b", "a", "c", "a", "b"],
            "b": [True, False, None, True, True, False, True],
            "cat": pd.Categorical(["u", "v", "u", "w", "u", "v", "u"]),
        }
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    yield buffer.getvalue()


def test_a_parquet_file_read_by_pyarrow_alone_profiles_as_with_pandas(
    monkeypatch: pytest.MonkeyPatch, parquet: bytes
) -> None:
    expected = _as_json(tablefile.read(parquet, "ref.parquet")[1])
    _hide_pandas(monkeypatch)
    assert _as_json(tablefile.read(parquet, "ref.parquet")[1]) == expected


def test_a_parquet_file_without_pyarrow_or_pandas_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, parquet: bytes
) -> None:
    _hide_pandas(monkeypatch)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # type: ignore[arg-type]
    with pytest.raises(columns_error()) as caught:
        tablefile.read(parquet, "data/ref.parquet")
    assert "reading the Parquet file data/ref.parquet needs pyarrow (or pandas)" in str(
        caught.value.message
    )
    assert "conveyor[parquet]" in str(caught.value.hint)


def columns_error() -> type[Exception]:
    from conveyor.foundation.extras import MissingExtra

    return MissingExtra


HIDDEN = """
import json, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("pandas", "scipy"):
            raise ModuleNotFoundError(name, name=name)
sys.meta_path.insert(0, Refuse())
from conveyor.monitor import tablefile
from conveyor.monitor.profiles import profile, reference
from conveyor.stats import binned
names, cols = tablefile.read(open(sys.argv[1], "rb").read(), sys.argv[1])
bins, ref = reference(cols)
window = json.load(open(sys.argv[2]))
cur = profile(window, bins)
verdict = binned.dataset(bins, ref, cur)
print(json.dumps([bins.to_json(), ref.to_json(), cur.to_json(), verdict.to_dict()], sort_keys=True))
print(sorted({"pandas", "scipy"} & set(sys.modules)))
"""


def test_in_a_process_without_pandas_and_scipy_the_verdicts_are_the_same(tmp_path: Any) -> None:
    rng = np.random.default_rng(5)
    n = 2000
    ref = pd.DataFrame({"x": rng.normal(size=n), "y": rng.exponential(size=n),
                        "c": rng.choice(["a", "b", "c"], n),
                        "k": rng.integers(0, 3, n)})  # fmt: skip
    ref.loc[::50, "y"] = None
    (tmp_path / "ref.csv").write_text(ref.to_csv(index=False))
    window = {"x": [float(v) for v in rng.normal(0.3, 1, 400)],
              "y": [float(v) for v in rng.exponential(size=400)],
              "c": [str(v) for v in rng.choice(["a", "b", "c", "d"], 400)],
              "k": [int(v) for v in rng.integers(0, 4, 400)]}  # fmt: skip
    (tmp_path / "window.json").write_text(json.dumps(window))
    done = subprocess.run(
        [sys.executable, "-c", HIDDEN, str(tmp_path / "ref.csv"), str(tmp_path / "window.json")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out, loaded = done.stdout.splitlines()
    assert loaded == "[]"
    _, cols = tablefile.read((tmp_path / "ref.csv").read_bytes(), "ref.csv")
    bins, ref_profile = reference(cols)
    cur = profile(window, bins)
    verdict = binned.dataset(bins, ref_profile, cur)
    full = [bins.to_json(), ref_profile.to_json(), cur.to_json(), verdict.to_dict()]
    assert out == json.dumps(full, sort_keys=True)
    assert verdict.drifted or any(c.drifted for c in verdict.columns)
