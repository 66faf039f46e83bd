"""Data, drift, behavioural and budget gates through the engine, each passing and failing on
real data and a real model package (a logistic regression saved with conveyor.models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.foundation import yamlio
from conveyor.gates import config, schema
from conveyor.gates.evaluate import Context, NoBaseline, Result, evaluate
from conveyor.registry import package


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data files and a model: positive when a + 0.1 * b > 0 (b barely matters)."""
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("gates")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": np.arange(300), "a": rng.normal(size=300),
                          "b": rng.normal(size=300)})  # fmt: skip
    frame["label"] = (frame["a"] + 0.1 * frame["b"] > 0).astype(int)
    frame.to_csv(root / "train.csv", index=False)
    frame.assign(a=frame["a"] + 3.0).to_csv(root / "shifted.csv", index=False)
    frame.head(150).to_csv(root / "test.csv", index=False)
    x = frame[["a", "b"]].to_numpy()
    model = LogisticRegression(C=100.0).fit(x, frame["label"])
    package.save(model, root / "model", example=x[:3], name="m")
    (root / "schema.yaml").write_text(schema.dump(schema.infer(frame)))
    return root


def run(world: Path, check: str) -> Result:
    doc = yamlio.load(f"gates:\n  - {check}\n", "conveyor.yaml")
    gates = config.parse(doc.data["gates"], doc)

    def baseline(vs: str) -> Any:
        raise NoBaseline(vs)

    ctx = Context(
        root=world,
        metrics={},
        predictions=lambda p: None,
        baseline=baseline,
        model=lambda: package.load(world / "model"),
        model_folder=world / "model",
    )
    (result,) = evaluate(gates, ctx)
    return result


def test_data_validation(world: Path) -> None:
    assert run(world, "{data: test.csv, schema: schema.yaml}").verdict == "pass"
    bad = pd.read_csv(world / "test.csv")
    bad.loc[:4, "a"] = 1000.0
    bad.loc[5, "id"] = 6  # a duplicate id
    bad.to_csv(world / "bad.csv", index=False)
    result = run(world, "{data: bad.csv, schema: schema.yaml}")
    assert result.verdict == "fail" and result.value >= 2
    rules = {(v["column"], v["rule"]) for v in result.slices}
    assert ("a", "max") in rules and ("id", "unique") in rules


def test_drift(world: Path) -> None:
    same = run(world, "drift: {reference: train.csv, current: test.csv, columns: [a, b]}")
    assert same.verdict == "pass", same.detail
    moved = run(world, "drift: {reference: train.csv, current: shifted.csv, columns: [a, b]}")
    assert moved.verdict == "fail" and "drifted: a" in moved.detail


def test_invariance_and_directional(world: Path) -> None:
    spec = "data: test.csv, drop: [id, label]"
    small = run(world, f"invariance: {{{spec}, column: b, delta: 0.01, tolerance: 0.05}}")
    assert small.verdict == "pass", small.detail
    large = run(world, f"invariance: {{{spec}, column: a, delta: 1.0, tolerance: 0.05}}")
    assert large.verdict == "fail" and large.value > 0
    up = run(world, f"directional: {{{spec}, column: a, delta: 0.5, expect: increase}}")
    assert up.verdict == "pass", up.detail
    down = run(world, f"directional: {{{spec}, column: a, delta: 0.5, expect: decrease}}")
    assert down.verdict == "fail" and "against 'decrease'" in down.detail


def test_examples_and_budgets(world: Path) -> None:
    (world / "ok.json").write_text(json.dumps([{"input": [3, 0], "expected": 1},
                                               {"input": [-3, 0], "expected": 0}]))  # fmt: skip
    (world / "wrong.json").write_text(json.dumps([{"input": [3, 0], "expected": 0}]))
    assert run(world, "examples: ok.json").verdict == "pass"
    wrong = run(world, "examples: wrong.json")
    assert wrong.verdict == "fail" and "expected 0, got 1" in wrong.detail
    fits = run(world, "budget: {size_mb: 1, p50_ms: 200, batch: 50, batch_p99_ms: 2000}")
    assert fits.verdict == "pass" and set(fits.value) >= {"size_mb", "p50_ms", "batch_p99_ms"}
    tight = run(world, "budget: {size_mb: 0.0001, p99_ms: 0.000001}")
    assert tight.verdict == "fail" and "size_mb" in tight.detail and "p99_ms" in tight.detail
