from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.data import pointer
from conveyor.data.hashing import hash_bytes
from conveyor.foundation.errors import ConfigError

OID = hash_bytes(b"x")


def parse(text: str) -> pointer.Pointer:
    return pointer.parse(text, Path("/p/data.cvy"), "data.cvy")


def test_round_trip() -> None:
    ptr = pointer.Pointer(Path("/p/data.cvy"), "data", OID, True, 10, 2)
    assert parse(ptr.to_text()) == ptr
    assert ptr.data_path == Path("/p/data")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path: data\nhash: [\n", "data.cvy:3: not valid YAML"),
        ("- a\n- b\n", "not a conveyor pointer"),
        ("path: data\n", "data.cvy: pointer needs a text 'hash'"),
        ("path: data\nhash: abc\n", "data.cvy:2: 'abc' is not a conveyor hash"),
        (f"path: ../../etc\nhash: {OID}\n", "data.cvy:1"),
        (f"path: data\nhash: {OID}\nsize: -1\n", "size must be a whole number"),
        (f"path: data\nhash: {OID}\ncolour: red\n", "data.cvy:3: unknown key 'colour'"),
    ],
)
def test_malformed_pointers_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert message in str(info.value)


def test_discover_skips_tracked_folders_and_control_dirs(tmp_path: Path) -> None:
    for rel in ["a.cvy", "a/inner.cvy", "sub/b.cvy", ".conveyor/x.cvy", ".git/y.cvy"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in pointer.discover(tmp_path))
    assert found == ["a.cvy", "sub/b.cvy"]


def test_a_malformed_pointer_is_a_clean_cli_error(project) -> None:  # type: ignore[no-untyped-def]
    project.write("data.cvy", "path: data\nhash: nothex\n")
    result = project.run("status")
    assert result.code == 2
    assert "data.cvy:2" in result.err and "hint:" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("9" * 5000, "a number of 5000 characters"),  # int() refuses past 4300 digits
        ("²", "size must be a whole number, not '²'"),  # a digit to isdigit(), not to int()
    ],
)
def test_a_size_the_fast_parser_cannot_convert_is_a_config_error(size: str, message: str) -> None:
    text = f"path: raw\nhash: {'ab' * 32}\nsize: {size}\nnfiles: 1\n"
    with pytest.raises(ConfigError, match=message) as info:
        pointer.parse(text, Path("raw.cvy"), "raw.cvy")
    assert info.value.message.startswith("raw.cvy:3: ")


@pytest.mark.parametrize(
    ("folder", "path", "shown"),
    [
        ("", ".git/hooks/post-checkout", ".git/hooks/post-checkout"),
        ("", ".git", ".git"),
        ("", "conveyor.lock", "conveyor.lock"),
        ("sub", ".git/config", "sub/.git/config"),
        ("sub", "raw.cvy", "sub/raw.cvy"),
    ],
)
def test_a_pointer_naming_what_conveyor_must_never_write_is_refused(
    folder: str, path: str, shown: str
) -> None:
    root = Path("/p")
    file = root / folder / "evil.cvy"
    text = f"{pointer.HEADER}path: {path}\nhash: {OID}\nsize: 1\nnfiles: 1\n"
    with pytest.raises(ConfigError) as info:
        pointer.parse(text, file, "evil.cvy", root)
    assert f"evil.cvy:2: path {shown} " in info.value.message


def test_control_file_names_are_data_below_the_root() -> None:
    text = f"path: conveyor.yaml\nhash: {OID}\nsize: 1\nnfiles: 1\n"
    ptr = pointer.parse(text, Path("/p/sub/x.cvy"), "sub/x.cvy", Path("/p"))
    assert ptr.data_path == Path("/p/sub/conveyor.yaml")
