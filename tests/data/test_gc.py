from __future__ import annotations

import os

import pytest

from conveyor.data.gc import needed, unreferenced
from conveyor.data.tree import Entry, Tree
from conveyor.foundation.errors import DataError
from conveyor.foundation.lock import ProjectLock
from tests.conftest import Project

A, B, C, T = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def objects(project: Project) -> set[str]:
    root = project.root / ".conveyor/cache/objects"
    return {p.parent.name + p.name for p in root.glob("*/*")}


def ref_of(project: Project, pointer: str) -> str:
    for line in (project.root / pointer).read_text().splitlines():
        if line.startswith("hash: "):
            return line.removeprefix("hash: ")
    raise AssertionError(f"no hash in {pointer}")


@pytest.fixture
def versioned(project: Project) -> Project:
    """Two versions of data/ and model.bin, the first committed to git, the second not."""
    for i in range(6):
        project.write(f"data/f{i}.txt", f"row {i}\n")
    project.write("model.bin", b"v1" * 1000)
    project.ok("add", "data", "model.bin")
    project.git("add", "-A")
    project.git("commit", "-qm", "v1")
    project.write("data/f0.txt", "row 0, edited\n")
    project.write("model.bin", b"v2" * 1000)
    project.ok("add", "data", "model.bin")
    return project


# -- the pure core ---------------------------------------------------------------------------
def test_needed_expands_trees_and_keeps_files() -> None:
    tree = Tree.of([Entry("x", B, 1), Entry("y/z", C, 2)])
    keep = needed({T + ".tree": {"data.cvy"}, A: {"m.cvy"}}, {T: tree}.get)
    assert keep == {A, B, C, T}


def test_needed_refuses_an_unknown_tree() -> None:
    with pytest.raises(DataError, match=r"tree object d+ named by data.cvy .*removed nothing"):
        needed({T + ".tree": {"data.cvy"}, A: {"m.cvy"}}, {}.get)


def test_unreferenced_is_sorted_and_spares_kept() -> None:
    assert unreferenced([C, A, B, A], {B}) == [A, C]


# -- against real files ----------------------------------------------------------------------
def test_gc_removes_only_unreferenced_objects(versioned: Project) -> None:
    before = objects(versioned)
    out = versioned.ok("gc")
    after = objects(versioned)
    # The old tree, the old f0.txt and the old model.bin go; everything the pointers name stays.
    assert len(before - after) == 3
    assert "removed 3 object(s)" in out
    tree_oid = ref_of(versioned, "data.cvy").removesuffix(".tree")
    assert tree_oid in after and ref_of(versioned, "model.bin.cvy") in after
    assert "clean" in versioned.ok("status") and "modified" not in versioned.ok("status")
    (versioned.root / "model.bin").unlink()
    versioned.ok("checkout")
    assert (versioned.root / "model.bin").read_bytes() == b"v2" * 1000
    assert "nothing to remove" in versioned.ok("gc")


def test_all_commits_keeps_what_history_names(versioned: Project) -> None:
    before = objects(versioned)
    out = versioned.ok("gc", "--all-commits")
    assert "nothing to remove" in out
    assert objects(versioned) == before
    # The committed version can still be checked out from the cache alone.
    versioned.ok("checkout", "--rev", "HEAD", "--force")
    assert (versioned.root / "data/f0.txt").read_text() == "row 0\n"
    assert (versioned.root / "model.bin").read_bytes() == b"v1" * 1000


def test_default_gc_drops_what_only_history_names(versioned: Project) -> None:
    versioned.ok("gc")
    result = versioned.run("checkout", "--rev", "HEAD", "--force")
    assert result.code == 1 and "not in the cache" in result.err


def test_dry_removes_nothing_and_lists_with_verbose(versioned: Project) -> None:
    before = objects(versioned)
    out = versioned.ok("gc", "--dry", "-v")
    assert objects(versioned) == before
    assert "would remove 3 object(s)" in out and "nothing was removed" in out
    listed = {line for line in out.splitlines() if len(line) == 64}
    versioned.ok("gc")
    assert listed == before - objects(versioned)


def test_gc_refuses_when_a_referenced_tree_is_missing(versioned: Project) -> None:
    tree_oid = ref_of(versioned, "data.cvy").removesuffix(".tree")
    (versioned.root / ".conveyor/cache/objects" / tree_oid[:2] / tree_oid[2:]).unlink()
    before = objects(versioned)
    result = versioned.run("gc")
    assert result.code == 1
    assert f"tree object {tree_oid} named by data.cvy" in result.err
    assert "conveyor pull" in result.err and "Traceback" not in result.err
    assert objects(versioned) == before


def test_gc_all_commits_refuses_when_a_tree_in_history_is_missing(versioned: Project) -> None:
    old = versioned.git("show", "HEAD:data.cvy")
    old_tree = next(line for line in old.splitlines() if line.startswith("hash: "))[6:70]
    (versioned.root / ".conveyor/cache/objects" / old_tree[:2] / old_tree[2:]).unlink()
    before = objects(versioned)
    result = versioned.run("gc", "--all-commits")
    assert result.code == 1 and "data.cvy (in git history)" in result.err
    assert objects(versioned) == before


def test_gc_refuses_a_corrupt_tree(versioned: Project) -> None:
    tree_oid = ref_of(versioned, "data.cvy").removesuffix(".tree")
    path = versioned.root / ".conveyor/cache/objects" / tree_oid[:2] / tree_oid[2:]
    path.chmod(0o644)
    path.write_bytes(b'{"tree":1,"entries":[]}')
    before = objects(versioned)
    result = versioned.run("gc")
    assert result.code == 1 and "corrupt" in result.err and "conveyor fsck" in result.err
    assert objects(versioned) == before


def test_gc_refuses_with_a_malformed_pointer(versioned: Project) -> None:
    (versioned.root / "model.bin.cvy").write_text("path: model.bin\nhash: abc123\n")
    before = objects(versioned)
    result = versioned.run("gc")
    assert result.code == 2 and "model.bin.cvy:2" in result.err
    assert objects(versioned) == before


def test_gc_waits_for_the_project_lock(versioned: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_LOCK_TIMEOUT", "0.1")
    before = objects(versioned)
    with ProjectLock(versioned.root / ".conveyor/lock", command="conveyor add"):
        result = versioned.run("gc")
    assert result.code == 3 and f"pid {os.getpid()}: conveyor add" in result.err
    assert objects(versioned) == before


def test_gc_clears_temp_files_of_dead_writers(versioned: Project) -> None:
    tmp = versioned.root / ".conveyor/tmp"
    leftover = tmp / "999999999.0.tmp"
    leftover.write_bytes(b"half an object")
    versioned.ok("gc", "--dry")
    assert not leftover.exists()


def test_remote_name_needs_remote(versioned: Project) -> None:
    result = versioned.run("gc", "-r", "store")
    assert result.code == 2 and "--remote" in result.err


def test_gc_in_an_empty_project(project: Project) -> None:
    assert "nothing to remove; all 0 object(s)" in project.ok("gc")


# -- on a remote -----------------------------------------------------------------------------
@pytest.fixture
def pushed(versioned: Project) -> Project:
    """Both versions pushed to a local-folder remote, the default one."""
    versioned.ok("remote", "add", "-d", "store", "../store")
    versioned.git("stash", "-q", "--", "data.cvy", "model.bin.cvy")  # v1's pointers, to push
    versioned.ok("checkout", "--force")
    versioned.ok("push")
    versioned.git("stash", "pop", "-q")
    versioned.ok("checkout", "--force")
    versioned.ok("push")
    return versioned


def remote_objects(project: Project) -> set[str]:
    return {p.parent.name + p.name for p in (project.root.parent / "store").glob("*/*")}


def test_gc_remote_removes_unreferenced_objects_there_too(pushed: Project) -> None:
    on_remote = remote_objects(pushed)
    out = pushed.ok("gc", "--remote", "--dry")
    assert "remote store: would remove 3 object(s)" in out
    assert remote_objects(pushed) == on_remote
    out = pushed.ok("gc", "--remote", "-r", "store")
    assert "the cache: removed 3 object(s)" in out and "remote store: removed 3 object(s)" in out
    assert remote_objects(pushed) == objects(pushed)
    # What the workspace names is still restorable from the remote alone.
    for path in (pushed.root / ".conveyor/cache/objects").glob("*/*"):
        path.unlink()
    pushed.ok("pull", "--force")
    assert_clean(pushed)


def test_gc_remote_all_commits_keeps_history(pushed: Project) -> None:
    on_remote = remote_objects(pushed)
    assert "remote store: nothing to remove" in pushed.ok("gc", "--remote", "--all-commits")
    assert remote_objects(pushed) == on_remote


def test_gc_remote_reads_a_tree_the_cache_lacks_from_the_remote(pushed: Project) -> None:
    tree_oid = ref_of(pushed, "data.cvy").removesuffix(".tree")
    (pushed.root / ".conveyor/cache/objects" / tree_oid[:2] / tree_oid[2:]).unlink()
    out = pushed.ok("gc", "--remote")
    assert "remote store: removed 3 object(s)" in out
    assert tree_oid in remote_objects(pushed)
    assert tree_oid not in objects(pushed)  # read to decide, not stored


def test_gc_remote_needs_a_remote(versioned: Project) -> None:
    before = objects(versioned)
    result = versioned.run("gc", "--remote")
    assert result.code == 2 and "no remote" in result.err and "Traceback" not in result.err
    assert objects(versioned) == before


def assert_clean(project: Project) -> None:
    out = project.ok("status")
    assert "modified" not in out and "missing" not in out and "not in cache" not in out
