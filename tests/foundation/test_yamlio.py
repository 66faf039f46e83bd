from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


# --- bounds: each hostile document is refused in a fresh process, timed and measured there ---

_MEASURE = """\
import json, resource, sys, time
from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
text = open(sys.argv[1]).read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    yamlio.load(text, "conveyor.yaml")
    error = None
except ConfigError as exc:
    error = str(exc)
seconds = time.perf_counter() - start
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"error": error, "seconds": seconds, "grown_kb": grown}))
"""


def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    # 10^9 nodes once expanded: before the bound, collecting key lines never finished
    "billion laughs": (_bomb(), "aliases expand to more than 100000 nodes", 5),
    "recursive anchor": ("a: &a [1, *a]\n", "refers to a collection it is inside", 1),
    "recursive mapping": ("x: 1\nb: &b {c: *b}\n", "refers to a collection it is inside", 2),
    "deep flow nesting": ("x: " + "[" * 500 + "]" * 500 + "\n", "deeper than 100 levels", 1),
    "deep block nesting": (
        "".join("  " * i + f"k{i}:\n" for i in range(500)) + "  " * 500 + "v: 1\n",
        "deeper than 100 levels",
        101,
    ),
    "5000-digit integer": ("seed: " + "7" * 5000 + "\n", "a number of 5000 characters", 1),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_yaml_is_refused_quickly_in_little_memory(name: str, tmp_path: Path) -> None:
    text, expected, line = HOSTILE[name]
    doc = tmp_path / "conveyor.yaml"
    doc.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(doc)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(proc.stdout)
    assert result["error"] is not None and expected in result["error"], result
    assert result["error"].startswith(f"conveyor.yaml:{line}: not valid YAML"), result
    assert result["seconds"] < 0.5, result
    assert result["grown_kb"] < 100 * 1024, result


def test_shared_aliases_within_the_budget_still_load() -> None:
    text = "base: &b {lr: 0.1, depth: 3}\ntrain: *b\ntune: {<<: *b, lr: 0.2}\n"
    data = yamlio.load(text, "params.yaml").data
    assert data["train"] == {"lr": 0.1, "depth": 3}
    assert data["tune"] == {"lr": 0.2, "depth": 3}


def test_a_long_quoted_number_is_text() -> None:
    assert yamlio.load(f"id: '{'9' * 500}'\n", "x").data == {"id": "9" * 500}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\nday: 2024-13-01\n", 2),  # a date with month 13: ValueError from datetime
        ("flag: !!bool maybe\n", 1),  # KeyError in the constructor
        ("n: !!int abc\n", 1),
        ("t: !!timestamp never\n", 1),  # AttributeError in the constructor
        ("f: !!float x\n", 1),
    ],
)
def test_a_value_the_constructor_cannot_convert_is_a_config_error(text: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        yamlio.load(text, "params.yaml")
    assert info.value.message.startswith(f"params.yaml:{line}: not valid YAML: cannot read")
