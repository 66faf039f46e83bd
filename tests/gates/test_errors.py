"""A check that cannot be evaluated raises a gate error that says which kind of mistake it is;
the engine turns it into that check's error verdict and goes on with the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConveyorError
from conveyor.gates import behaviour, config
from conveyor.gates.context import Context
from conveyor.gates.errors import CheckConfigError, CheckInputError, GateError, NoBaseline
from conveyor.gates.evaluate import evaluate


def checks(text: str) -> config.Gates:
    doc = yamlio.load(f"gates:\n{text}", "conveyor.yaml")
    return config.parse(doc.data["gates"], doc)


def context(root: Path, metrics: dict[str, Any]) -> Context:
    def baseline(vs: str) -> Any:
        raise NoBaseline(vs)

    return Context(root=root, metrics=metrics, predictions=lambda p: None, baseline=baseline)


def never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the check should not reach a verdict")


def test_the_tree() -> None:
    for error in (CheckConfigError, CheckInputError, NoBaseline):
        assert issubclass(error, GateError) and issubclass(error, ConveyorError)


def test_settings_and_inputs_raise_their_own_errors(tmp_path: Path) -> None:
    (tmp_path / "cases.json").write_text('{"not": "a list"}')
    ctx = context(tmp_path, {})
    (examples,) = checks("  - examples: cases.json\n").checks
    with pytest.raises(CheckInputError, match=r'cases.json: a list of \{"input"'):
        behaviour.evaluate(examples, ctx, never)
    (invariance,) = checks("  - invariance: {data: cases.csv, column: a}\n").checks
    with pytest.raises(CheckConfigError, match="this check needs the candidate model") as exc:
        behaviour.evaluate(invariance, ctx, never)
    assert exc.value.hint == "name it with gates.model (a model declared under models:)"


def test_the_engine_reports_each_error_on_its_check(tmp_path: Path) -> None:
    gates = checks("  - metric: eval.f1\n    min: 0.5\n  - metric: eval.auc\n    min: 0.5\n")
    bad, good = evaluate(gates, context(tmp_path, {"eval.f1": "high", "eval.auc": 0.9}))
    assert bad.verdict == "error" and good.verdict == "pass"
    assert bad.detail == "metric 'eval.f1' of the candidate is 'high', not a number"
