"""Params files: loading by suffix, dotted keys, -S overrides and comparing values."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.pipeline import params

DATA = {"train": {"lr": 0.1, "C": 1.0, "opt": {"name": "adam", "betas": [0.9, 0.99]}}, "seed": 7}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# load


def test_load_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "params.yaml", "train:\n  lr: 0.1\n  layers: [1, 2]\nname: x\n")
    assert params.load(path, "params.yaml") == {"train": {"lr": 0.1, "layers": [1, 2]}, "name": "x"}


def test_load_yml_suffix_in_any_case(tmp_path: Path) -> None:
    assert params.load(write(tmp_path, "p.YML", "a: 1\n"), "p.YML") == {"a": 1}


def test_load_json(tmp_path: Path) -> None:
    path = write(tmp_path, "p.json", '{"train": {"lr": 0.1}, "flag": true}')
    assert params.load(path, "p.json") == {"train": {"lr": 0.1}, "flag": True}


def test_load_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "p.toml", 'seed = 3\n[train]\nlr = 0.1\nkernel = "rbf"\n')
    assert params.load(path, "p.toml") == {"seed": 3, "train": {"lr": 0.1, "kernel": "rbf"}}


@pytest.mark.parametrize("name", ["params.yaml", "p.json", "p.toml"])
def test_an_empty_file_reads_as_empty(tmp_path: Path, name: str) -> None:
    assert params.load(write(tmp_path, name, ""), name) == {}


def test_a_missing_file_reads_as_empty(tmp_path: Path) -> None:
    assert params.load(tmp_path / "nope.yaml", "nope.yaml") == {}


def test_a_bad_suffix_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        params.load(write(tmp_path, "params.ini", "[a]\nb = 1\n"), "params.ini")
    assert info.value.message.startswith("params.ini: ")
    assert info.value.hint is not None and ".toml" in info.value.hint


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^conf/p\.json: not valid JSON: "):
        params.load(write(tmp_path, "p.json", '{"a": 1,}'), "conf/p.json")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^p\.toml: not valid TOML: "):
        params.load(write(tmp_path, "p.toml", "a = \n"), "p.toml")


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^params\.yaml:3: not valid YAML"):
        params.load(write(tmp_path, "params.yaml", "a: 1\nb: 2\n  c: [\n"), "params.yaml")


@pytest.mark.parametrize(("name", "text"), [("p.yaml", "- 1\n- 2\n"), ("p.json", "[1, 2]")])
def test_a_params_file_must_hold_a_mapping(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}: a params file must hold a mapping"):
        params.load(write(tmp_path, name, text), name)


# names and lookups


def test_split_name() -> None:
    assert params.split_name("train.lr") == ("params.yaml", "train.lr")
    assert params.split_name("other.yaml:train.lr") == ("other.yaml", "train.lr")
    assert params.split_name("conf/p.json:seed") == ("conf/p.json", "seed")
    assert params.split_name("seed", "") == ("", "seed")


def test_lookup() -> None:
    assert params.lookup(DATA, "train.lr") == 0.1
    assert params.lookup(DATA, "train.opt") == {"name": "adam", "betas": [0.9, 0.99]}
    assert params.lookup(DATA, "seed") == 7
    assert params.lookup(DATA, "train.nope") is params.MISSING
    assert params.lookup(DATA, "seed.x") is params.MISSING  # 7 has no keys
    assert params.lookup(DATA, "train.opt.betas.0") is params.MISSING  # lists are not indexed


def test_lookup_finds_falsy_values() -> None:
    data = {"a": {"zero": 0, "none": None, "off": False, "empty": {}}}
    assert params.lookup(data, "a.zero") == 0
    assert params.lookup(data, "a.none") is None
    assert params.lookup(data, "a.off") is False
    assert params.lookup(data, "a.empty") == {}


def test_require_returns_the_value() -> None:
    assert params.require(DATA, "train.C", "here") == 1.0


def test_require_names_the_place_and_the_nearest_key() -> None:
    with pytest.raises(ConfigError) as info:
        params.require(DATA, "train.lrr", "conveyor.yaml:4: stage 'train'")
    assert info.value.message == "conveyor.yaml:4: stage 'train': unknown param 'train.lrr'"
    assert info.value.hint == "did you mean 'train.lr'?"


def test_require_without_a_near_key_gives_no_guess() -> None:
    with pytest.raises(ConfigError) as info:
        params.require(DATA, "zzzzzz", "x")
    assert info.value.hint is None


def test_keys_include_sections() -> None:
    assert params.keys(DATA) == [
        "train",
        "train.lr",
        "train.C",
        "train.opt",
        "train.opt.name",
        "train.opt.betas",
        "seed",
    ]


def test_flatten_gives_leaves() -> None:
    assert params.flatten(DATA) == {
        "train.lr": 0.1,
        "train.C": 1.0,
        "train.opt.name": "adam",
        "train.opt.betas": [0.9, 0.99],
        "seed": 7,
    }
    assert params.flatten({"a": {}, "b": None}) == {"a": {}, "b": None}


# -S overrides


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.lr=0.2", ("params.yaml", "train.lr", 0.2)),
        ("seed=3", ("params.yaml", "seed", 3)),
        ("flag=true", ("params.yaml", "flag", True)),
        ("name=svm", ("params.yaml", "name", "svm")),
        ("name='1'", ("params.yaml", "name", "1")),
        ("x=null", ("params.yaml", "x", None)),
        ("x=", ("params.yaml", "x", "")),
        ("layers=[1, 2]", ("params.yaml", "layers", [1, 2])),
        ("expr=a=b", ("params.yaml", "expr", "a=b")),
        ("other.yaml:train.lr=0.5", ("other.yaml", "train.lr", 0.5)),
        (" seed =4", ("params.yaml", "seed", 4)),
        ("x=[unclosed", ("params.yaml", "x", "[unclosed")),
    ],
)
def test_parse_override(text: str, expected: tuple[str, str, Any]) -> None:
    assert params.parse_override(text) == expected


@pytest.mark.parametrize("text", ["train.lr", "=0.1", " =1"])
def test_parse_override_needs_key_and_value(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        params.parse_override(text)
    assert info.value.message == f"-S {text}: expected KEY=VALUE"
    assert info.value.hint == "for example: -S train.lr=0.1"


def test_override_copies_and_sets() -> None:
    out = params.override(DATA, "train.opt.name", "sgd", "-S train.opt.name")
    assert params.lookup(out, "train.opt.name") == "sgd"
    assert DATA["train"]["opt"]["name"] == "adam"  # type: ignore[index]


def test_override_of_an_unknown_key_suggests_one() -> None:
    with pytest.raises(ConfigError) as info:
        params.override(DATA, "train.lrr", 1, "-S train.lrr")
    assert info.value.message == "-S train.lrr: unknown param 'train.lrr'"
    assert info.value.hint == "did you mean 'train.lr'?"


# same


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 1.0),
        (0.1, 0.1),
        (2**60, 2**60),
        (float("nan"), float("nan")),
        ("x", "x"),
        (None, None),
        (True, True),
        ([1, 2.0], (1.0, 2)),
        ({"a": [1]}, {"a": [1.0]}),
        ({0: "cat", 1: "dog"}, {"0": "cat", "1": "dog"}),  # the lock writes keys as strings
        (datetime.date(2024, 1, 2), datetime.date(2024, 1, 2)),
    ],
)
def test_same(a: Any, b: Any) -> None:
    assert params.same(a, b)
    assert params.same(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1", 1),
        (True, 1),
        (False, 0),
        (True, 1.0),
        (None, 0),
        (None, "null"),
        (0.1, 0.2),
        (2**53 + 1, 2**53),
        (float("nan"), 1.0),
        ([1, 2], [1, 2, 3]),
        ([1, 2], [2, 1]),
        ({"a": 1}, {"a": 1, "b": 2}),
        ({"a": 1}, {"b": 1}),
        ({"a": "1"}, {"a": 1}),
        ([1], {"0": 1}),
        ("yes", True),
    ],
)
def test_not_same(a: Any, b: Any) -> None:
    assert not params.same(a, b)
    assert not params.same(b, a)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.1, "0.1"),
        ("l1", "l1"),
        ("two words", "two words"),
        ([1, "a"], '[1, "a"]'),
        ({"b": 1, "a": 2}, '{"a": 2, "b": 1}'),
        (None, "null"),
        (True, "true"),
        ("1", '"1"'),
        ("true", '"true"'),
        ("", '""'),
        (params.MISSING, "(none)"),
    ],
)
def test_show(value: Any, shown: str) -> None:
    assert params.show(value) == shown


def test_show_a_value_json_cannot_hold() -> None:
    # YAML reads 2024-01-02 as a date; a changed date param must still have a message.
    assert "2024-01-02" in params.show(datetime.date(2024, 1, 2))


@pytest.mark.parametrize(
    ("suffix", "text"),
    [(".json", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"), (".toml", "a = " + "[" * 5000)],
)
def test_a_params_file_nested_past_recursion_is_a_config_error(suffix: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        params.parse(text, suffix, f"params{suffix}")
    assert info.value.message.startswith(f"params{suffix}: not valid {suffix[1:].upper()}")
