from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.foundation.config import Config
from conveyor.foundation.errors import ConfigError


def make(tmp_path: Path, text: str = "", local: str = "") -> Config:
    (tmp_path / "config").write_text(text)
    if local:
        (tmp_path / "config.local").write_text(local)
    return Config(tmp_path)


def test_defaults_and_overrides(tmp_path: Path) -> None:
    cfg = make(tmp_path, "cache:\n  type: hardlink,copy\n", local="cache:\n  type: symlink\n")
    assert cfg.get("cache.type") == "symlink"
    assert cfg.get("core.fsync") == "journal"


@pytest.mark.parametrize(
    ("value", "mode"), [("true", "always"), ("no", "never"), ("journal", "journal")]
)
def test_fsync_takes_a_boolean_or_journal(tmp_path: Path, value: str, mode: str) -> None:
    assert make(tmp_path, f"core:\n  fsync: {value}\n").get("core.fsync") == mode


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make(tmp_path, "core:\n  remote: a\ncache:\n  tpye: copy\n")
    assert "config:4" in info.value.message
    assert "cache.tpye" in info.value.message
    assert info.value.hint == "did you mean 'cache.type'?"


def test_unknown_section_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make(tmp_path, "cahce:\n  type: copy\n")
    assert info.value.hint == "did you mean 'cache'?"


def test_bad_link_type_is_refused(tmp_path: Path) -> None:
    cfg = make(tmp_path)
    with pytest.raises(ConfigError, match="unknown link type 'softlink'"):
        cfg.set("cache.type", "softlink,copy")


def test_set_writes_and_reloads(tmp_path: Path) -> None:
    cfg = make(tmp_path)
    cfg.set("cache.type", "hardlink, copy")
    cfg.set("remote.store.url", "/tmp/store")
    again = Config(tmp_path)
    assert again.get("cache.type") == "hardlink,copy"
    assert again.remote("store") == {"url": "/tmp/store"}
    again.unset("remote.store")
    assert Config(tmp_path).remotes() == {}


def test_unknown_remote_suggests(tmp_path: Path) -> None:
    cfg = make(tmp_path, "remote:\n  origin:\n    url: /x\n")
    with pytest.raises(ConfigError) as info:
        cfg.remote("orgin")
    assert "unknown remote 'orgin'" in info.value.message
    assert info.value.hint == "did you mean 'origin'?"


def test_remote_without_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a url"):
        make(tmp_path, "remote:\n  origin:\n    region: x\n")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config:2: not valid YAML"):
        make(tmp_path, "core:\n\tremote: a\n")
