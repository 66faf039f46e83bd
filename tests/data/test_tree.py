from __future__ import annotations

import pytest

from conveyor.data.hashing import hash_bytes
from conveyor.data.tree import Entry, Tree, split_ref
from conveyor.foundation.errors import DataError, PathError

A, B = hash_bytes(b"a"), hash_bytes(b"b")


def test_same_entries_in_any_order_give_the_same_oid() -> None:
    one = Tree.of([Entry("b/x", B, 1), Entry("a", A, 1, True)])
    two = Tree.of([Entry("a", A, 1, True), Entry("b/x", B, 1)])
    assert one.to_bytes() == two.to_bytes() and one.oid() == two.oid()
    assert Tree.from_bytes(one.to_bytes()) == one
    assert one.size == 2


def test_mode_changes_the_tree() -> None:
    assert Tree.of([Entry("a", A, 1)]).oid() != Tree.of([Entry("a", A, 1, True)]).oid()


def test_garbage_is_refused() -> None:
    with pytest.raises(DataError, match="not a valid tree"):
        Tree.from_bytes(b"{nope", oid="abc")


def test_escaping_paths_are_refused() -> None:
    evil = Tree((Entry("../../etc/passwd", A, 1),)).to_bytes()
    with pytest.raises(PathError):
        Tree.from_bytes(evil)


def test_split_ref() -> None:
    assert split_ref(A + ".tree") == (A, True)
    assert split_ref(A) == (A, False)


@pytest.mark.parametrize(
    "path", ["", "/a", "a//b", "a/", "a/../b", "..", "./a", "a/.", "x\ny", "a\x00b"]
)
def test_every_kind_of_bad_path_is_refused_in_bulk(path: str) -> None:
    good = [Entry(f"ok{i}", A, 1) for i in range(3)]
    evil = Tree((*good, Entry(path, B, 1))).to_bytes()
    with pytest.raises(PathError):
        Tree.from_bytes(evil)


def test_bad_hash_is_refused() -> None:
    with pytest.raises(DataError, match="invalid hash 'XYZ'"):
        Tree.from_bytes(Tree((Entry("a", A, 1), Entry("b", "XYZ", 1))).to_bytes())


@pytest.mark.parametrize(
    "path",
    [".git/hooks/post-checkout", "sub/.git/config", ".GIT/config", ".conveyor/config", "x.cvy"],
)
def test_entries_inside_git_or_conveyor_folders_are_refused(path: str) -> None:
    evil = Tree((Entry("ok.csv", A, 1), Entry(path, B, 1))).to_bytes()
    with pytest.raises(PathError, match=f"tree t: entry {path} is"):
        Tree.from_bytes(evil, oid="t")


@pytest.mark.parametrize(
    "path",
    [
        ".Conveyor/config",
        "a/.git./hooks/x",
        "GIT~1/config",
        "a\\..\\.git\\hooks",
        ".g\u200cit/x",
        "x.CVY",
    ],
)
def test_entries_other_filesystems_read_as_git_or_conveyor_are_refused(path: str) -> None:
    """The tree's one-pass filter must send every such name to check_path (case-insensitive
    and HFS+/NTFS-folded names, 8.3 short names, Windows separators)."""
    evil = Tree((Entry("ok.csv", A, 1), Entry(path, B, 1))).to_bytes()
    with pytest.raises(PathError, match="tree t: entry "):
        Tree.from_bytes(evil, oid="t")


@pytest.mark.parametrize("path", ["conveyor.yaml", "a.git/x", "git/x", "x.cvy.csv", ".gitignore"])
def test_ordinary_names_that_look_alike_are_kept(path: str) -> None:
    tree = Tree((Entry(path, A, 1),))
    assert Tree.from_bytes(tree.to_bytes()) == tree
