from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from conveyor.data.hashing import hash_bytes
from tests.conftest import Project


@pytest.fixture
def tracked(project: Project) -> Project:
    for i in range(20):
        project.write(f"data/d{i % 3}/f{i}.txt", f"row {i}\n")
    project.write("model.bin", b"\x01" * 5000)
    project.ok("add", "data", "model.bin")
    return project


@pytest.mark.parametrize("link", ["copy", "hardlink", "symlink", "reflink,copy"])
def test_checkout_restores_deleted_data(tracked: Project, link: str) -> None:
    shutil.rmtree(tracked.root / "data")
    (tracked.root / "model.bin").unlink()
    out = tracked.ok("checkout", "--link", link)
    assert "data: 20 added" in out
    assert (tracked.root / "data/d1/f4.txt").read_text() == "row 4\n"
    assert "modified" not in tracked.ok("status")
    f = tracked.root / "data/d1/f4.txt"
    if link == "hardlink":
        assert f.stat().st_nlink == 2
        assert stat.S_IMODE(f.stat().st_mode) == 0o444
    if link == "symlink":
        assert f.is_symlink()
    if link.endswith("copy"):
        assert f.stat().st_nlink == 1 and not f.is_symlink()


def test_only_differing_files_are_touched(tracked: Project) -> None:
    keep = tracked.root / "data/d0/f0.txt"
    before = keep.stat().st_ino
    (tracked.root / "data/d2/f2.txt").unlink()
    out = tracked.ok("checkout", "data")
    assert "1 added, 0 modified, 0 deleted" in out
    assert keep.stat().st_ino == before
    assert "up to date" in tracked.ok("checkout")


def test_checkout_refuses_to_lose_unsaved_changes(tracked: Project) -> None:
    tracked.write("data/d0/f0.txt", "my precious edit")
    tracked.write("data/extra.txt", "new file")
    result = tracked.run("checkout")
    assert result.code == 1
    assert "not in the cache" in result.err and "data/d0/f0.txt" in result.err
    assert (tracked.root / "data/d0/f0.txt").read_text() == "my precious edit"
    out = tracked.ok("checkout", "--force")
    assert "1 modified, 1 deleted" in out
    assert (tracked.root / "data/d0/f0.txt").read_text() == "row 0\n"
    assert not (tracked.root / "data/extra.txt").exists()


def test_saved_changes_are_replaced_without_force(tracked: Project) -> None:
    tracked.write("data/d0/f0.txt", "version two")
    tracked.ok("add", "data")
    old = tracked.root / "data.cvy"
    tracked.git("add", "-A")
    tracked.git("commit", "-qm", "v2")
    tracked.write("data/d0/f0.txt", "version three")
    tracked.ok("add", "data")
    text3 = old.read_text()
    tracked.ok("checkout", "--rev", "HEAD")  # v2 is in the cache: nothing is lost
    assert (tracked.root / "data/d0/f0.txt").read_text() == "version two"
    assert old.read_text() != text3
    assert "clean" in tracked.ok("status")


def test_checkout_at_a_git_revision(tracked: Project) -> None:
    tracked.git("add", "-A")
    tracked.git("commit", "-qm", "v1")
    tracked.write("model.bin", b"\x02" * 10)
    tracked.ok("add", "model.bin")
    tracked.ok("checkout", "--rev", "HEAD", "model.bin")
    assert (tracked.root / "model.bin").read_bytes() == b"\x01" * 5000
    assert tracked.git("status", "--porcelain").strip() == ""
    bad = tracked.run("checkout", "--rev", "no-such-rev")
    assert bad.code == 1 and "unknown git revision 'no-such-rev'" in bad.err


def test_checkout_when_objects_are_missing(tracked: Project) -> None:
    shutil.rmtree(tracked.root / ".conveyor/cache/objects")
    shutil.rmtree(tracked.root / "data")
    result = tracked.run("checkout", "data")
    assert result.code == 1 and "not in the cache" in result.err and "conveyor pull" in result.err


def test_checkout_verify_refuses_a_corrupt_object(tracked: Project) -> None:
    (tracked.root / "model.bin").unlink()
    ref = (tracked.root / "model.bin.cvy").read_text().split("hash: ")[1].split()[0]
    obj = tracked.root / ".conveyor/cache/objects" / ref[:2] / ref[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"\x01" * 4999 + b"\x00")
    result = tracked.run("checkout", "--verify", "model.bin")
    assert result.code == 1 and "corrupt" in result.err
    assert not (tracked.root / "model.bin").exists()
    assert (tracked.root / ".conveyor/cache/quarantine" / ref).exists()


def test_file_replaced_by_folder_needs_force_when_unsaved(tracked: Project) -> None:
    (tracked.root / "model.bin").unlink()
    tracked.write("model.bin/inner", "surprise")
    result = tracked.run("checkout", "model.bin")
    assert result.code == 1 and "is a folder" in result.err
    tracked.ok("checkout", "--force", "model.bin")
    assert (tracked.root / "model.bin").read_bytes() == b"\x01" * 5000


LINKS = ["copy", "hardlink", "symlink", "reflink"]


def oid_of(project: Project, pointer: str) -> str:
    return (project.root / pointer).read_text().split("hash: ")[1].split()[0].removesuffix(".tree")


def corrupt(project: Project, oid: str, data: bytes) -> Path:
    """Damage a cache object for real: made writable, then written over."""
    obj = project.root / ".conveyor/cache/objects" / oid[:2] / oid[2:]
    obj.chmod(0o644)
    obj.write_bytes(data)
    return obj


@pytest.mark.parametrize("link", LINKS)
def test_checkout_never_writes_through_a_symlinked_folder_in_a_tracked_one(
    tracked: Project, tmp_path: Path, link: str
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.rmtree(tracked.root / "data/d1")
    os.symlink(outside, tracked.root / "data/d1")
    result = tracked.run("checkout", "--link", link)
    assert result.code == 2, result.err
    assert "data/d1 is a symbolic link to" in result.err
    assert "outside the project" in result.err and "rm data/d1" in result.err
    assert "Traceback" not in result.err
    assert list(outside.iterdir()) == []
    os.unlink(tracked.root / "data/d1")  # what the hint says: then checkout restores it
    assert "data: 7 added" in tracked.ok("checkout", "--link", f"{link},copy")
    assert (tracked.root / "data/d1/f4.txt").read_text() == "row 4\n"


def test_a_symlink_committed_to_git_is_not_written_through(
    tracked: Project, tmp_path: Path
) -> None:
    """A clone gets the link from git and the data from the cache: the link wins nothing."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.rmtree(tracked.root / "data/d2")
    os.symlink(outside, tracked.root / "data/d2")
    tracked.git("add", "-f", "data/d2", "data.cvy")
    tracked.git("commit", "-qm", "a link")
    shutil.rmtree(tracked.root / "data")
    tracked.git("checkout", "--", "data/d2")  # as a clone would have it
    assert (tracked.root / "data/d2").is_symlink()
    result = tracked.run("checkout", "--force")
    assert result.code == 2 and "data/d2 is a symbolic link" in result.err
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("link", LINKS)
def test_the_tracked_folder_itself_as_a_symlink_is_refused(
    tracked: Project, tmp_path: Path, link: str
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    shutil.rmtree(tracked.root / "data")
    os.symlink(outside, tracked.root / "data")
    result = tracked.run("checkout", "--force", "--link", link, "data")
    assert result.code == 2 and "data is a symbolic link to" in result.err
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


def test_a_file_pointer_whose_path_links_to_a_folder_deletes_nothing_there(
    tracked: Project, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "keep.txt").write_text("mine")
    (tracked.root / "model.bin").unlink()
    os.symlink(outside, tracked.root / "model.bin")
    result = tracked.run("checkout", "--force", "model.bin")
    assert result.code == 2 and "model.bin is a symbolic link" in result.err
    assert (outside / "sub" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("link", LINKS)
def test_a_parent_folder_linking_out_of_the_project_is_refused(
    project: Project, tmp_path: Path, link: str
) -> None:
    """``data/`` a symlink elsewhere, the pointer data/raw.cvy from git (checkout --rev)."""
    project.write("data/raw/f.txt", "raw\n")
    project.ok("add", "data/raw")
    project.git("add", "-A")
    project.git("commit", "-qm", "raw")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.rmtree(project.root / "data")
    os.symlink(outside, project.root / "data")
    result = project.run("checkout", "--rev", "HEAD", "--link", link)
    assert result.code == 2, result.err
    assert "lies under data, a symbolic link to" in result.err
    assert "outside the project" in result.err
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("path", "force"),
    [
        (".git/hooks/post-checkout", False),
        (".git/config", True),
        (".GIT/hooks/pre-commit", False),
        ("conveyor.yaml", True),
        ("conveyor.lock", True),
        ("other.cvy", False),
        (".conveyor/config", True),
    ],
)
def test_a_pointer_naming_git_or_control_files_is_refused(
    tracked: Project, path: str, force: bool
) -> None:
    """A hostile pointer: checkout would write a git hook or config from the cache."""
    hook = b"#!/bin/sh\necho pwned > pwned\n"
    tracked.write("payload", hook)
    tracked.ok("add", "payload")
    ptr = (tracked.root / "payload.cvy").read_text().replace("path: payload", f"path: {path}")
    (tracked.root / "payload.cvy").unlink()
    (tracked.root / "evil.cvy").write_text(ptr)
    before = {p: p.read_bytes() for p in (tracked.root / ".git").rglob("*") if p.is_file()}
    target = tracked.root / path
    target_before = target.read_bytes() if target.is_file() else None
    result = tracked.run("checkout", *(["--force"] if force else []))
    assert result.code == 2, result.err
    assert "evil.cvy:2: " in result.err and path in result.err and "Traceback" not in result.err
    after = {p: p.read_bytes() for p in (tracked.root / ".git").rglob("*") if p.is_file()}
    assert after == before
    assert not (tracked.root / ".git/hooks/post-checkout").exists()
    assert (tracked.root / "conveyor.lock").exists() is False
    assert (target.read_bytes() if target.is_file() else None) == target_before  # untouched


def test_a_pointer_naming_the_git_folder_itself_is_refused(tracked: Project) -> None:
    tree = oid_of(tracked, "data.cvy")
    (tracked.root / "evil.cvy").write_text(f"path: .git\nhash: {tree}.tree\nsize: 1\nnfiles: 1\n")
    result = tracked.run("checkout", "--force")
    assert result.code == 2 and "evil.cvy:1: path .git is git's own folder" in result.err
    assert (tracked.root / ".git/HEAD").exists()


def test_an_old_pointer_naming_git_is_refused_by_checkout_rev(tracked: Project) -> None:
    model = oid_of(tracked, "model.bin.cvy")
    (tracked.root / "evil.cvy").write_text(f"path: .git/config\nhash: {model}\n")
    tracked.git("add", "evil.cvy")
    tracked.git("commit", "-qm", "evil")
    (tracked.root / "evil.cvy").unlink()
    config = (tracked.root / ".git/config").read_bytes()
    result = tracked.run("checkout", "--rev", "HEAD", "--force")
    assert result.code == 2 and "HEAD:evil.cvy:1: path .git/config" in result.err
    assert (tracked.root / ".git/config").read_bytes() == config


@pytest.mark.parametrize("entry", ["../escaped.txt", ".git/hooks/post-checkout", "/tmp/abs.txt"])
def test_a_tree_whose_entries_leave_its_folder_is_not_materialised(
    tracked: Project, entry: str
) -> None:
    from conveyor.data.workspace import Workspace

    model = oid_of(tracked, "model.bin.cvy")
    rows = [[entry, model, 5000, 0]]
    with Workspace(tracked.root) as ws, ws.odb.batch() as batch:
        tree = batch.add_bytes(json.dumps({"tree": 1, "entries": rows}).encode())
    (tracked.root / "bad.cvy").write_text(f"path: bad\nhash: {tree}.tree\nsize: 5000\nnfiles: 1\n")
    outside = Path("/tmp/abs.txt")
    outside_before = outside.stat().st_mtime_ns if outside.exists() else None
    result = tracked.run("checkout", "--force", "bad")
    assert result.code == 2, result.err
    assert f"tree {tree}: entry {entry}" in result.err and "Traceback" not in result.err
    assert not (tracked.root / "escaped.txt").exists()
    assert not (tracked.root / ".git/hooks/post-checkout").exists()
    assert not (tracked.root / "bad").exists()
    assert (outside.stat().st_mtime_ns if outside.exists() else None) == outside_before


@pytest.mark.parametrize("link", LINKS)
def test_checkout_refuses_a_corrupt_object_and_status_is_not_clean(
    tracked: Project, link: str
) -> None:
    oid = hash_bytes(b"row 4\n")
    corrupt(tracked, oid, b"row X\n")
    shutil.rmtree(tracked.root / "data")
    result = tracked.run("checkout", "--link", f"{link},copy")
    assert result.code == 1, result.err
    assert f"1 cache object(s) are corrupt (first: {oid})" in result.err
    assert "data/d1/f4.txt" in result.err and "Traceback" not in result.err
    assert not os.path.lexists(tracked.root / "data/d1/f4.txt")
    assert (tracked.root / "data/d1/f1.txt").read_text() == "row 1\n"  # the rest is there
    assert (tracked.root / ".conveyor/cache/quarantine" / oid).read_bytes() == b"row X\n"
    states = json.loads(tracked.run("status", "--json").out)["data"]
    data = next(s for s in states if s["path"] == "data")
    assert data["state"] == "modified" and data["deleted"] == ["d1/f4.txt"]
    assert data["not_in_cache"] == 1


def test_objects_are_stamped_so_a_write_is_seen_without_rehashing(tracked: Project) -> None:
    from conveyor.data.objects import stamped

    oid = hash_bytes(b"row 4\n")
    obj = tracked.root / ".conveyor/cache/objects" / oid[:2] / oid[2:]
    assert stamped(oid, obj.stat())
    assert obj.stat().st_mtime < time.time()  # a true age, never in the future
    corrupt(tracked, oid, b"row 4\n")  # the same bytes, written again: checked, then stamped
    assert not stamped(oid, obj.stat())
    shutil.rmtree(tracked.root / "data")
    tracked.ok("checkout", "--link", "hardlink")
    assert stamped(oid, obj.stat())
    assert "clean" in tracked.ok("status")


@pytest.mark.parametrize(
    "name", [".conveyor/tmp", ".conveyor/cache/objects", ".conveyor/cache/objects/4b"]
)
def test_a_control_folder_linking_out_of_the_project_is_refused(
    tracked: Project, tmp_path: Path, name: str
) -> None:
    """A repository may commit .conveyor/tmp as a link: temp files of dead writers are removed
    there, objects written and gc'd there."""
    outside = tmp_path / "home"
    (outside / "4194303.old").mkdir(parents=True)  # named like a dead writer's temp folder
    (outside / "4194303.old" / "thesis.tex").write_text("mine")
    link = tracked.root / name
    shutil.rmtree(link, ignore_errors=True)
    os.symlink(outside, link)
    for command in (["add", "model.bin"], ["checkout"], ["gc"], ["status"]):
        result = tracked.run(*command)
        assert result.code == 2, (command, result.err)
        assert f"{name} is a symbolic link to {outside}" in result.err
    assert (outside / "4194303.old" / "thesis.tex").read_text() == "mine"


@pytest.mark.parametrize("name", [".conveyor/tmp", ".conveyor/cache"])
def test_a_control_folder_linking_into_git_is_refused(tracked: Project, name: str) -> None:
    """Inside the project, but git's: a hook or an object there is not conveyor's to delete."""
    hook = tracked.root / ".git" / "hooks" / "4194303.old" / "keep"  # like a dead writer's temp
    hook.parent.mkdir(parents=True)
    hook.write_text("mine")
    link = tracked.root / name
    shutil.rmtree(link, ignore_errors=True)
    os.symlink("../.git/hooks", link)
    for command in (["checkout"], ["gc"], ["status"]):
        result = tracked.run(*command)
        assert result.code == 2, (command, result.err)
        assert f"{name} is a symbolic link to" in result.err
        assert "inside git's own folder" in result.err
    assert hook.read_text() == "mine"
