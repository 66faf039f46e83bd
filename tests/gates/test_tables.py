from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conveyor.foundation.errors import DataError, PathError
from conveyor.gates.tables import read_table

FRAME = pd.DataFrame({"id": [1, 2, 3], "city": ["Paris", "Berlin", None], "x": [0.5, 1.5, 2.5]})


def _same(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["id", "city", "x"]
    assert frame["id"].tolist() == [1, 2, 3]
    assert frame["city"].iloc[0] == "Paris" and frame["city"].isna().iloc[2]


def test_csv_tsv_parquet_jsonl_and_gzip(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "a.csv", index=False)
    FRAME.to_csv(tmp_path / "a.tsv", index=False, sep="\t")
    FRAME.to_csv(tmp_path / "a.csv.gz", index=False)
    FRAME.to_parquet(tmp_path / "a.parquet")
    FRAME.to_json(tmp_path / "a.jsonl", orient="records", lines=True)
    for name in ("a.csv", "a.tsv", "a.csv.gz", "a.parquet", "a.jsonl"):
        _same(read_table(tmp_path / name))


def test_a_folder_is_its_files_in_name_order(tmp_path: Path) -> None:
    FRAME.iloc[2:].to_csv(tmp_path / "b.csv", index=False)
    FRAME.iloc[:2].to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "README.md").write_text("not a table")
    (tmp_path / ".hidden.csv").write_text("junk\n")
    _same(read_table(tmp_path))


def test_a_folder_of_other_columns_is_refused(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "a.csv", index=False)
    FRAME[["id"]].to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError, match=r"b\.csv has other columns than .*a\.csv") as exc:
        read_table(tmp_path)
    assert exc.value.hint and "one file" in exc.value.hint


def test_missing_empty_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(PathError, match=r"nope\.csv does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(PathError, match=r"cannot read a \.xlsx") as exc:
        read_table(tmp_path / "data.xlsx")
    assert exc.value.hint and ".csv" in exc.value.hint and ".parquet" in exc.value.hint
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "sub").mkdir()
    with pytest.raises(PathError, match="holds no table files"):
        read_table(tmp_path / "sub")


def test_malformed_files_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,4\n5,6,7\n")
    with pytest.raises(DataError, match=r"bad\.csv:4: not valid CSV"):
        read_table(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON Lines"):
        read_table(tmp_path / "bad.jsonl")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"bad\.parquet: not a valid Parquet file"):
        read_table(tmp_path / "bad.parquet")
    (tmp_path / "latin.csv").write_bytes(b"a\n\xe9t\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_table(tmp_path / "latin.csv")
