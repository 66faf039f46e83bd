from __future__ import annotations

import shutil
import stat

import pytest

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
