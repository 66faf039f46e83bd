from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.foundation.errors import NotAProjectError, PathError
from conveyor.foundation.paths import check_relative, find_root, inside


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
