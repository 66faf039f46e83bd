"""The models: section: names to package paths, every mistake with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.registry import config


def parse(text: str) -> dict[str, str]:
    doc = yamlio.load(text, "conveyor.yaml")
    return config.parse(doc.data["models"], doc)


def test_names_to_paths() -> None:
    text = "models:\n  clf: {path: models/clf, desc: churn}\n  reg:\n    path: models/reg\n"
    assert parse(text) == {"clf": "models/clf", "reg": "models/reg"}


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("models: [a]\n", "conveyor.yaml:1: 'models' maps model names to {path: ...}", "models:"),
        ("models:\n  a: {}\n", "conveyor.yaml:2: model 'a' needs a path", "path: models/"),
        ("models:\n  a: x\n", "conveyor.yaml:2: model 'a' needs a path", "path: models/"),
        ("models:\n  a: {path: 3}\n", "conveyor.yaml:2: model 'a' needs a path", None),
        (
            "models:\n  a:\n    path: m\n    dsec: x\n",
            "conveyor.yaml:4: model 'a': unknown key 'dsec'",
            "did you mean 'desc'?",
        ),
        ("models:\n  'a b': {path: m}\n", "conveyor.yaml:2: 'a b' is not a model name", "letters"),
    ],
)
def test_errors_name_the_line_and_the_fix(text: str, message: str, hint: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.message == message
    if hint is not None:
        assert info.value.hint is not None and hint in info.value.hint


def test_every_model_is_checked(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text("models:\n  a: {}\n  b: {path: m, x: 1}\n")
    with pytest.raises(ConfigError) as info:
        config.declared(tmp_path)
    assert "conveyor.yaml:2: model 'a' needs a path" in info.value.message
    assert "error: conveyor.yaml:3: model 'b': unknown key 'x'" in info.value.message


def test_no_file_or_no_section_declares_nothing(tmp_path: Path) -> None:
    assert config.declared(tmp_path) == {}
    (tmp_path / "conveyor.yaml").write_text("stages: {}\n")
    assert config.declared(tmp_path) == {}
