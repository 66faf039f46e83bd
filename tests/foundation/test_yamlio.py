from __future__ import annotations

import pytest

from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError


def test_lines_of_nested_keys() -> None:
    doc = yamlio.load("a:\n  b: 1\n  c:\n    d: 2\n", "f.yaml")
    assert doc.data == {"a": {"b": 1, "c": {"d": 2}}}
    assert doc.where("a", "c", "d") == "f.yaml:4"
    assert doc.where("a", "zz") == "f.yaml:1"
    assert doc.where("nope") == "f.yaml"


def test_syntax_error_has_line() -> None:
    with pytest.raises(ConfigError, match=r"f.yaml:4: not valid YAML"):
        yamlio.load("a: 1\nb: 2\nc:\n\td: 3\n", "f.yaml")


def test_empty_document() -> None:
    assert yamlio.load("", "f").data is None


def test_a_key_given_twice_is_an_error_naming_both_lines() -> None:
    with pytest.raises(ConfigError) as info:
        yamlio.load("stages:\n  train:\n    cmd: a\n  train:\n    cmd: b\n", "conveyor.yaml")
    assert info.value.message == "conveyor.yaml:4: 'stages.train' is given twice (first at line 2)"
    assert info.value.hint is not None and "last" in info.value.hint


def test_a_tag_safe_loading_refuses_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        yamlio.load("cmd: !ref x\n", "conveyor.yaml")
    assert info.value.message.startswith("conveyor.yaml:1: not valid YAML")


def test_equal_keys_in_different_list_items_are_fine() -> None:
    assert yamlio.load("- {a: 1}\n- {a: 2}\n", "x").data == [{"a": 1}, {"a": 2}]


def test_floats_are_read_as_yaml_1_2_reads_them() -> None:
    data = yamlio.load("lr: 1e-5\nbig: -2E3\nplain: 1.5\ntext: 1e5x\nquoted: '1e-5'\n", "x").data
    assert data == {"lr": 1e-5, "big": -2000.0, "plain": 1.5, "text": "1e5x", "quoted": "1e-5"}
    import yaml

    assert yaml.safe_load("lr: 1e-5") == {"lr": "1e-5"}  # the shared loader is left alone
