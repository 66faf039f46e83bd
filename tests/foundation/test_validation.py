"""A section's schema errors in the user's terms: line, key, suggestion; all of them at once."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_core import SchemaValidator
from pydantic_core import core_schema as cs

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.validation import ConfigErrors, Problem, combine, field, validate

FLAGS = cs.typed_dict_schema(
    {"cache": field(cs.bool_schema(), True), "persist": field(cs.bool_schema(), False)},
    extra_behavior="forbid",
)
SCHEMA = cs.typed_dict_schema(
    {
        "cmd": field(cs.str_schema(), required=True),
        "outs": field(
            cs.list_schema(
                cs.union_schema(
                    [cs.str_schema(), cs.dict_schema(cs.str_schema(), cs.nullable_schema(FLAGS))]
                )
            ),
            [],
        ),
        "jobs": field(cs.int_schema(strict=True, ge=1), 1),
        "mode": field(cs.literal_schema(["fast", "safe"]), "safe"),
    },
    extra_behavior="forbid",
)
VALIDATOR = SchemaValidator(SCHEMA)
LINES = {(): 1, ("outs",): 3, ("outs", "m.pkl"): 4, ("outs", "m.pkl", "cach"): 5}


def where(keys: tuple[str, ...]) -> str:
    for n in range(len(keys), -1, -1):
        if keys[:n] in LINES:
            return f"conveyor.yaml:{LINES[keys[:n]]}"
    return "conveyor.yaml"


def errors(data: Any, **options: Any) -> list[ConfigError]:
    with pytest.raises(ConfigError) as info:
        validate(VALIDATOR, SCHEMA, data, where, **options)
    error = info.value
    return list(error.parts) if isinstance(error, ConfigErrors) else [error]


def test_valid_data_comes_back_with_its_defaults() -> None:
    assert validate(VALIDATOR, SCHEMA, {"cmd": "x"}, where) == {
        "cmd": "x",
        "outs": [],
        "jobs": 1,
        "mode": "safe",
    }


def test_an_unknown_key_inside_a_union_names_its_line_and_the_nearest_key() -> None:
    (error,) = errors({"cmd": "x", "outs": [{"m.pkl": {"cach": False}}]})
    assert error.message == "conveyor.yaml:5: unknown key 'cach'"
    assert error.hint == "did you mean 'cache'?"


def test_an_unknown_key_far_from_any_lists_the_valid_ones() -> None:
    (error,) = errors({"cmd": "x", "zzzz": 1}, extra_keys=("foreach",))
    assert error.hint == "valid keys: cmd, outs, jobs, mode, foreach"
    (near,) = errors({"cmd": "x", "foreahc": 1}, extra_keys=("foreach",))
    assert near.hint == "did you mean 'foreach'?"


def test_every_problem_is_reported_once_with_a_label() -> None:
    found = errors({"outs": [1], "jobs": 0, "mode": "slow"}, label="stage 'train'")
    assert [e.message for e in found] == [
        "conveyor.yaml:1: stage 'train' has no 'cmd'",
        "conveyor.yaml:3: stage 'train': outs.0: expected text, not 1",
        "conveyor.yaml:1: stage 'train': jobs: at least 1, not 0",
        "conveyor.yaml:1: stage 'train': mode: one of 'fast' or 'safe', not 'slow'",
    ]


def test_a_section_words_a_problem_its_own_way() -> None:
    def describe(problem: Problem, head: str) -> ConfigError | None:
        if problem.key == "jobs":
            return ConfigError(f"{head}: jobs: a whole number from 1, not {problem.input!r}")
        return None

    (error,) = errors({"cmd": "x", "jobs": True}, describe=describe)
    assert error.message == "conveyor.yaml:1: jobs: a whole number from 1, not True"


def test_combine_keeps_the_parts_and_drops_repeats() -> None:
    a, b = ConfigError("a", hint="fix a"), ConfigError("b")
    combined = combine([a, combine([a, b])])
    assert isinstance(combined, ConfigErrors) and combined.parts == (a, b)
    assert str(combined) == "a\n  hint: fix a\nerror: b"
    assert combine([a]) is a
    many = combine([ConfigError(str(i)) for i in range(25)])
    assert many.message.endswith("error: ... and 5 more errors")
