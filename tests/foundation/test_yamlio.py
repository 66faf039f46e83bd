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
