from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import Project


@pytest.fixture
def data(project: Project) -> Project:
    rng = np.random.default_rng(3)
    n = 600
    train = pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "age": rng.integers(18, 90, n),
            "city": rng.choice(["Paris", "Berlin", "Rome"], n),
            "income": rng.normal(50_000, 10_000, n).round(2),
        }
    )
    (project.root / "data").mkdir()
    train.to_csv(project.root / "data/train.csv", index=False)
    same = train.assign(income=rng.normal(50_000, 10_000, n).round(2))
    same.to_csv(project.root / "data/same.csv", index=False)
    shifted = train.assign(income=rng.normal(60_000, 10_000, n).round(2))
    shifted.to_parquet(project.root / "data/shifted.parquet")
    return project


def test_infer_prints_yaml_and_writes_a_file(data: Project) -> None:
    out = data.ok("schema", "infer", "data/train.csv")
    assert out.startswith("# conveyor data schema, inferred from data/train.csv (600 rows).")
    assert "rows: {min: 300, max: 1200}" in out
    assert (
        "  city:\n    type: string\n    nullable: false\n    categories: [Berlin, Paris, Rome]"
        in out
    )
    written = data.ok("schema", "infer", "data/train.csv", "-o", "schema.yaml")
    assert written.strip() == "wrote schema.yaml: 4 columns, from 600 rows"
    assert (data.root / "schema.yaml").read_text() == out


def test_validate_passes_clean_data_and_lists_violations(data: Project) -> None:
    data.ok("schema", "infer", "data/train.csv", "-o", "schema.yaml")
    clean = data.ok("schema", "validate", "data/same.csv", "schema.yaml")
    assert clean.strip() == "no violations: data/same.csv (600 rows) against schema.yaml"
    data.write(
        "data/bad.csv",
        "id,age,city,income,extra\n1,200,Pariss,1000,x\n1,30,Paris,,y\n"
        + "2,30,Rome,50000,z\n" * 400,
    )
    result = data.run("schema", "validate", "data/bad.csv", "schema.yaml")
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0].split() == ["column", "rule", "count", "severity", "detail"]
    assert "age     max" in result.out and "1 value above" in result.out
    assert "'Pariss' (1)" in result.out and "400 repeated values" in result.out
    assert "income  nullable" in result.out
    assert "extra   unexpected column" in result.out and "warning" in result.out
    assert lines[-1] == "5 violations (1 warning): data/bad.csv (402 rows) against schema.yaml"
    report = json.loads(data.run("schema", "validate", "data/bad.csv", "schema.yaml", "--json").out)
    assert report["passed"] is False and report["rows"] == 402
    first = report["violations"][0]
    assert (first["column"], first["rule"], first["count"], first["severity"]) == (
        "id",
        "unique",
        400,
        "error",
    )


def test_validate_exit_codes_for_bad_inputs(data: Project) -> None:
    data.write("schema.yaml", "columns:\n  age: {type: int}\n")
    bad_schema = data.run("schema", "validate", "data/train.csv", "schema.yaml")
    assert bad_schema.code == 2
    assert "schema.yaml:2: columns.age.type: 'int' is not one of" in bad_schema.err
    assert "did you mean 'integer'?" in bad_schema.err and "Traceback" not in bad_schema.err
    data.ok("schema", "infer", "data/train.csv", "-o", "schema.yaml")
    missing = data.run("schema", "validate", "data/nope.csv", "schema.yaml")
    assert missing.code == 2 and "data/nope.csv does not exist" in missing.err
    data.write("data/broken.csv", "a,b\n1,2\n1,2,3\n")
    broken = data.run("schema", "validate", "data/broken.csv", "schema.yaml")
    assert broken.code == 1 and "data/broken.csv:3: not valid CSV" in broken.err
    data.write("data/train.xlsx", "PK")
    unknown = data.run("schema", "infer", "data/train.xlsx")
    assert unknown.code == 2 and "hint: conveyor reads .csv" in unknown.err


def test_drift_table_exit_codes_and_json(data: Project) -> None:
    same = data.ok("drift", "data/train.csv", "data/same.csv")
    assert same.splitlines()[0].split() == [
        "column", "kind", "values", "psi", "p-value", "effect", "verdict", "why",
    ]  # fmt: skip
    assert "id      categorical  -" in same and "identifier" in same  # text, all distinct
    assert same.splitlines()[-1] == "0 of 3 columns drifted"
    shifted = data.run("drift", "data/train.csv", "data/shifted.parquet")
    assert shifted.code == 1
    income = next(line for line in shifted.out.splitlines() if line.startswith("income"))
    assert "numeric" in income and "drifted" in income and "ks p" in income
    assert shifted.out.splitlines()[-1] == "1 of 3 columns drifted"
    report = json.loads(
        data.run(
            "drift", "data/train.csv", "data/shifted.parquet", "--json", "--columns", "income"
        ).out
    )
    assert report["rules"]["psi_threshold"] == 0.2 and report["rules"]["p_value"] == 0.01
    (column,) = report["columns"]
    assert column["column"] == "income" and column["verdict"] == "drifted"
    assert column["statistics"]["psi"] > 0.2 and column["statistics"]["ks_p_value"] < 0.01


def test_drift_small_samples_and_mistakes(data: Project) -> None:
    data.write("data/tiny.csv", "id,age,city,income\n1,30,Paris,1.0\n2,40,Rome,2.0\n")
    tiny = data.run("drift", "data/train.csv", "data/tiny.csv", "--columns", "age")
    assert tiny.code == 1 and "inconclusive" in tiny.out and "too few values" in tiny.out
    assert tiny.out.splitlines()[-1] == "0 of 1 columns drifted, 1 inconclusive"
    typo = data.run("drift", "data/train.csv", "data/same.csv", "--columns", "incme")
    assert typo.code == 1 and "no column 'incme'" in typo.err and "'income'" in typo.err
    assert data.run("drift", "data/train.csv", "data/same.csv", "--columns", ",").code == 2
    assert data.run("drift", "data/train.csv", "data/same.csv", "--p-value", "2").code == 2


def test_help_imports_neither_pandas_nor_scipy() -> None:
    code = (
        "import sys\nfrom conveyor.cli.main import main\n"
        "for argv in (['--help'], ['schema', '--help'], ['drift', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print(sorted({'pandas', 'scipy', 'numpy'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
