from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.foundation.errors import NotAProjectError, PathError
from conveyor.foundation.paths import check_path, check_place, check_relative, find_root, inside


def test_find_root_walks_up(tmp_path: Path) -> None:
    (tmp_path / ".conveyor").mkdir()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_root(deep) == tmp_path.resolve()


def test_find_root_outside_a_project(tmp_path: Path) -> None:
    with pytest.raises(NotAProjectError, match="not inside a conveyor project"):
        find_root(tmp_path)


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", ".", ".conveyor/cache"])
def test_inside_refuses_escapes(tmp_path: Path, bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PathError):
        inside(tmp_path, bad)


def test_inside_refuses_symlinked_parent_leaving_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    monkeypatch.chdir(root)
    with pytest.raises(PathError, match="outside the project"):
        inside(root, "link/file")
    assert inside(root, "data/x") == root.resolve() / "data" / "x"


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "./a", "a\nb"])
def test_check_relative(bad: str) -> None:
    with pytest.raises(PathError):
        check_relative(bad, where="t")


def test_check_relative_accepts_nested() -> None:
    assert check_relative("a/b/c.csv", where="t") == "a/b/c.csv"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (".git", "is git's own folder"),
        (".git/hooks/post-checkout", "is inside git's own folder .git"),
        (".GIT/config", "is inside git's own folder .GIT"),
        ("data/.git/config", "is inside git's own folder .git"),
        (".conveyor/config", "is inside conveyor's own folder .conveyor"),
        ("conveyor.yaml", "is one of the project's control files"),
        ("conveyor.lock", "is one of the project's control files"),
        ("data.cvy", "is a conveyor pointer file"),
        ("sub/raw.cvy", "is a conveyor pointer file"),
        ("../x", "must be relative"),
        ("/etc/passwd", "must be relative"),
        ("a/../../x", "must be relative"),
    ],
)
def test_check_path_refuses_what_conveyor_must_never_write(bad: str, why: str) -> None:
    with pytest.raises(PathError) as info:
        check_path(bad, where="x.cvy:2")
    assert info.value.message.startswith("x.cvy:2: ")
    assert why in info.value.message


def test_check_path_accepts_data_and_control_names_below_the_root() -> None:
    assert check_path("data/conveyor.yaml", where="t") == "data/conveyor.yaml"
    assert check_path("conveyor.yaml", where="t", nested=True) == "conveyor.yaml"
    assert check_path("data/.gitignore", where="t") == "data/.gitignore"
    assert check_path("data/x.git", where="t") == "data/x.git"


def test_check_place_refuses_a_folder_linking_out_of_the_project(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "data").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "data" / "sub")
    with pytest.raises(PathError) as info:
        check_place(root, "data/sub/deep/x.csv", where="x.cvy")
    message = info.value.message
    assert "lies under data/sub, a symbolic link to" in message
    assert "outside the project" in message
    assert info.value.hint is not None and "rm data/sub" in info.value.hint


def test_check_place_refuses_a_link_into_git_and_follows_one_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / "store").mkdir()
    os.symlink(root / ".git", root / "data")
    with pytest.raises(PathError, match="git's own folder"):
        check_place(root, "data/hooks/post-checkout", where="x.cvy")
    os.symlink(root / "store", root / "inner")
    assert check_place(root, "inner/x.csv", where="t") == root / "inner" / "x.csv"


def test_inside_refuses_git_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PathError, match="git's own folder"):
        inside(tmp_path, ".git/config")


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (".Conveyor/config", "is inside conveyor's own folder .Conveyor"),  # macOS, Windows
        (".g\u200cit/hooks/pre-commit", "is inside git's own folder"),  # HFS+ drops U+200C
        ("\ufeff.git/config", "is inside git's own folder"),
        (".git./hooks/x", "is inside git's own folder .git."),  # NTFS drops trailing dots
        (".git /hooks/x", "is inside git's own folder .git "),  # and spaces
        ("GIT~1/hooks/x", "is inside git's own folder GIT~1"),  # NTFS's short name of .git
        ("..\\.git\\hooks\\x", "climbs out of its folder"),  # a Windows separator
        ("data\\..\\..\\x", "climbs out of its folder"),
        ("data\\.git\\config", "is inside git's own folder .git"),
        ("Conveyor.LOCK", "is one of the project's control files"),
        ("conveyor.yaml.", "is one of the project's control files"),
        ("sub/raw.CVY", "is a conveyor pointer file"),
    ],
)
def test_check_path_refuses_own_folders_as_other_filesystems_name_them(bad: str, why: str) -> None:
    with pytest.raises(PathError) as info:
        check_path(bad, where="x.cvy:2")
    assert why in info.value.message


def test_check_path_accepts_names_that_only_look_alike() -> None:
    for good in ("data/.gitkeep", "data/git", "data/..x", "data/x..", "a\\b", "data/.conveyorrc"):
        assert check_path(good, where="t") == good
