"""Parsing the tune: section: plain values in, a TuneSpec or a clear error out."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.tune.spec import Dimension, parse

BASE: dict[str, Any] = {
    "objective": {"metric": "eval.auc", "direction": "maximize"},
    "space": {
        "train.C": {"type": "float", "low": 0.01, "high": 10, "log": True},
        "train.iters": {"type": "int", "low": 100, "high": 500, "step": 100},
        "train.solver": {"type": "categorical", "choices": ["lbfgs", "saga"]},
    },
}


def test_a_full_section() -> None:
    spec = parse(
        {**BASE, "trials": 8, "jobs": 2, "sampler": "random", "stages": "train"}, "f:1", "p"
    )
    assert spec.metric == "eval.auc" and spec.direction == "maximize"
    assert spec.space == (
        Dimension("train.C", "float", 0.01, 10.0, None, True),
        Dimension("train.iters", "int", 100.0, 500.0, 100.0, False),
        Dimension("train.solver", "categorical", choices=("lbfgs", "saga")),
    )
    assert (spec.trials, spec.jobs, spec.sampler, spec.stages, spec.study) == (
        8,
        2,
        "random",
        ("train",),
        "p",
    )


def test_defaults() -> None:
    spec = parse({**BASE, "objective": {"metric": "loss"}}, "f:1", "proj")
    assert (spec.direction, spec.trials, spec.jobs, spec.sampler, spec.pruner) == (
        "maximize",
        20,
        1,
        "tpe",
        "none",
    )


@pytest.mark.parametrize(
    ("change", "message", "hint"),
    [
        ({"trails": 5}, "unknown key 'trails' in tune", "did you mean 'trials'?"),
        ({"objective": {"direction": "up"}}, "tune.objective needs a metric", "objective:"),
        ({"objective": {"metric": "x", "direction": "up"}}, "maximize or minimize", None),
        ({"sampler": "tpee"}, "tune.sampler 'tpee' is not one of", "did you mean 'tpe'?"),
        ({"space": {"a": {"type": "floot", "low": 0, "high": 1}}}, "type 'floot'", "'float'"),
        ({"space": {"a": {"type": "float", "low": 1, "high": 0}}}, "low must be below high", None),
        ({"space": {"a": {"type": "float", "low": 0, "high": 1, "log": True}}}, "low > 0", None),
        ({"space": {"a": {"type": "int", "low": 0.5, "high": 3}}}, "whole low and high", None),
        ({"space": {"a": {"type": "categorical", "choices": []}}}, "non-empty list", None),
        ({"space": {"a": {"type": "float", "low": 0, "high": 1, "stepp": 1}}}, "'stepp'", "'step'"),
        ({"trials": 0}, "tune.trials must be a whole number of 1 or more", None),
        ({"sampler": "grid"}, "a grid search needs a step for every float param", None),
    ],
)
def test_errors_name_the_key(change: dict[str, Any], message: str, hint: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        parse({**BASE, **change}, "conveyor.yaml:30", "p")
    assert info.value.message.startswith("conveyor.yaml:30: ")
    assert message in info.value.message
    if hint is not None:
        assert info.value.hint is not None and hint in info.value.hint


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"type": "int", "low": 1, "high": 9, "step": 0.5}, "whole number above 0"),
        ({"type": "float", "low": 0, "high": 1, "step": 0}, "a number above 0"),
    ],
)
def test_tune_steps_are_checked(space: dict[str, object], message: str) -> None:
    from conveyor.tune.spec import parse

    raw = {"objective": {"metric": "m"}, "space": {"x": space}}
    with pytest.raises(ConfigError, match=message):
        parse(raw, "f:1", "p")
    with pytest.raises(ConfigError, match=r"tune\.seed"):
        parse(
            {
                "objective": {"metric": "m"},
                "space": {"x": {"type": "int", "low": 1, "high": 2}},
                "seed": "abc",
            },
            "f:1",
            "p",
        )
    with pytest.raises(ConfigError, match=r"tune\.study"):
        parse(
            {
                "objective": {"metric": "m"},
                "space": {"x": {"type": "int", "low": 1, "high": 2}},
                "study": "../x",
            },
            "f:1",
            "p",
        )


def test_in_a_file_each_error_names_the_line_of_its_key() -> None:
    from conveyor.foundation import yamlio

    text = (
        "tune:\n  objective: {metric: eval.auc}\n  space:\n"
        "    train.C: {type: float, low: 1, high: 0}\n  trials: 3\n"
    )
    doc = yamlio.load(text, "conveyor.yaml")
    with pytest.raises(ConfigError) as info:
        parse(doc.data["tune"], lambda keys: doc.where("tune", *keys), "p")
    assert info.value.message == "conveyor.yaml:4: tune.space.train.C: low must be below high"
    with pytest.raises(ConfigError) as info:
        parse({**doc.data["tune"], "space": BASE["space"], "smapler": "x"}, "conveyor.yaml:1", "p")
    assert info.value.message == "conveyor.yaml:1: unknown key 'smapler' in tune"
