from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from conveyor.data import build, hashing
from conveyor.data.objects import stamped
from conveyor.data.tree import Tree
from tests.conftest import Project
from tests.data.test_checkout import corrupt


def test_add_folder_writes_pointer_tree_and_gitignore(project: Project) -> None:
    project.write("data/a.csv", "a,b\n1,2\n")
    project.write("data/sub/b.csv", "x\n")
    (project.root / "data/run.sh").write_text("#!/bin/sh\n")
    (project.root / "data/run.sh").chmod(0o755)
    out = project.ok("add", "data")
    assert "added data (3 files" in out
    text = (project.root / "data.cvy").read_text()
    assert "path: data\n" in text and "nfiles: 3\n" in text
    assert "/data" in (project.root / ".gitignore").read_text().splitlines()
    ref = text.split("hash: ")[1].split()[0]
    assert ref.endswith(".tree")
    listing = project.ok("object", "ls-tree", ref[:8])
    assert "755" in listing.splitlines()[1] and "run.sh" in listing
    tree = Tree.from_bytes((project.ok("object", "cat", ref)).encode())
    assert [e.path for e in tree.entries] == ["a.csv", "run.sh", "sub/b.csv"]
    obj = project.root / ".conveyor/cache/objects" / tree.entries[0].oid[:2]
    assert stat.S_IMODE((obj / tree.entries[0].oid[2:]).stat().st_mode) == 0o444


def test_add_file_and_object_hash(project: Project) -> None:
    path = project.write("model.bin", b"\x00\x01" * 1000)
    project.ok("add", "model.bin")
    ref = (project.root / "model.bin.cvy").read_text().split("hash: ")[1].split()[0]
    assert ref == hashing.hash_file(path)
    assert project.ok("object", "hash", "model.bin").strip() == ref
    assert project.ok("object", "cat", ref[:10]).encode() == path.read_bytes()


def test_add_twice_does_not_duplicate_gitignore(project: Project) -> None:
    project.write("f.txt", "1")
    project.ok("add", "f.txt")
    project.ok("add", "f.txt")
    assert (project.root / ".gitignore").read_text().count("/f.txt") == 1


def test_unchanged_files_are_not_read_again(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(50):
        project.write(f"data/{i}.txt", str(i))
    project.ok("add", "data")
    reads: list[str] = []
    original = hashing.hash_file

    def counting(path, size=None):  # type: ignore[no-untyped-def]
        reads.append(str(path))
        return original(path, size)

    monkeypatch.setattr(hashing, "hash_file", counting)
    assert "clean" in project.ok("status")
    assert reads == []
    project.write("data/7.txt", "changed")
    out = project.ok("status")
    assert "modified: data/7.txt" in out
    assert reads == [str(project.root / "data/7.txt")]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope", "nope does not exist"),
        ("../outside", "outside the project"),
        (".conveyor", "conveyor's own folder"),
        ("data/a.csv", "inside the tracked folder data"),
    ],
)
def test_add_refuses_bad_targets(project: Project, target: str, message: str) -> None:
    project.write("data/a.csv", "1")
    project.ok("add", "data")
    result = project.run("add", target)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_scan_reports_added_files_to_progress(project: Project) -> None:
    for i in range(3):
        project.write(f"d/{i}", "x" * (i + 1))

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, int]] = []

        def start(self, description: str, total: int, unit: str = "files") -> None:
            self.calls.append((description, total))

        def advance(self, amount: int = 1) -> None:
            self.calls.append(("advance", amount))

        def stop(self) -> None:
            self.calls.append(("stop", 0))

    from conveyor.data.workspace import Workspace

    rec = Recorder()
    with Workspace(project.root) as ws:
        built = build.scan(ws.root, ws.root / "d", ws.memo, progress=rec)
    assert built.nfiles == 3 and built.size == 6
    assert rec.calls[0] == ("hashing", 6) and rec.calls[-1] == ("stop", 0)
    assert sum(n for what, n in rec.calls if what == "advance") == 6
    assert json.loads(built.tree.to_bytes())["tree"] == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (".git/config", "git's own folder"),
        (".git", "git's own folder"),
        ("conveyor.yaml", "control files"),
    ],
)
def test_add_refuses_git_and_control_files(project: Project, target: str, why: str) -> None:
    project.write("conveyor.yaml", "stages: {}\n")
    result = project.run("add", target)
    assert result.code == 2 and why in result.err and "Traceback" not in result.err
    assert not (project.root / f"{target}.cvy").exists()


def test_add_refuses_a_folder_holding_a_git_repository(project: Project) -> None:
    project.write("data/a.csv", "a\n")
    project.write("data/vendored/.git/config", "[core]\n")
    result = project.run("add", "data")
    assert result.code == 2 and "entry vendored/.git/config" in result.err
    assert not (project.root / "data.cvy").exists()


def _obj(project: Project, oid: str) -> Path:
    return project.root / ".conveyor/cache/objects" / oid[:2] / oid[2:]


def _usable_everywhere(project: Project, store: Path, files: dict[str, bytes]) -> None:
    """After a repair: status clean, fsck clean, checkout and push give the good bytes."""
    assert "clean" in project.ok("status")
    assert "no corruption found" in project.ok("fsck")
    for rel in files:
        (project.root / rel).unlink()
    project.ok("checkout")
    for rel, good in files.items():
        assert (project.root / rel).read_bytes() == good
    project.ok("remote", "add", "-d", "store", str(store))
    project.ok("push")
    for good in files.values():
        oid = hashing.hash_bytes(good)
        assert (store / oid[:2] / oid[2:]).read_bytes() == good


@pytest.mark.parametrize("size", [1000, hashing.SMALL + 1000])
@pytest.mark.parametrize("how", ["unchanged", "copied"])
def test_adding_a_good_copy_of_a_file_repairs_its_corrupt_object(
    project: Project, tmp_path: Path, size: int, how: str
) -> None:
    good = os.urandom(size)
    project.write("model.bin", good)
    project.ok("add", "model.bin")
    oid = hashing.hash_bytes(good)
    bad = b"bad" + good[3:]
    corrupt(project, oid, bad)
    if how == "copied":  # a new file (new inode): the memo does not know it
        (project.root / "model.bin").unlink()
        project.write("model.bin", good)
    project.ok("add", "model.bin")
    assert _obj(project, oid).read_bytes() == good and stamped(oid, _obj(project, oid).stat())
    assert (project.root / ".conveyor/cache/quarantine" / oid).read_bytes() == bad
    _usable_everywhere(project, tmp_path / "store", {"model.bin": good})


def test_an_intact_unstamped_object_is_rehashed_and_stamped_not_replaced(
    project: Project,
) -> None:
    project.write("f.txt", "same")
    project.ok("add", "f.txt")
    oid = hashing.hash_bytes(b"same")
    corrupt(project, oid, b"same")  # written over with the same bytes: no stamp, still good
    ino = _obj(project, oid).stat().st_ino
    project.ok("add", "f.txt")
    assert _obj(project, oid).stat().st_ino == ino and stamped(oid, _obj(project, oid).stat())
    assert not (project.root / ".conveyor/cache/quarantine").exists()


def test_adding_a_folder_repairs_corrupt_objects_of_changed_and_unchanged_files(
    project: Project, tmp_path: Path
) -> None:
    files = {f"data/f{i}.txt": f"row {i}\n".encode() for i in range(20)}
    files["data/twin.txt"] = files["data/f7.txt"]  # one object for two files
    for rel, good in files.items():
        project.write(rel, good)
    project.ok("add", "data")
    for rel in ("data/f3.txt", "data/f7.txt"):
        corrupt(project, hashing.hash_bytes(files[rel]), b"rot\n")
    # f3 is copied in again (so the folder changed); f7 and its twin stay as the memo knows them
    (project.root / "data/f3.txt").unlink()
    project.write("data/f3.txt", files["data/f3.txt"])
    out = project.ok("add", "data")
    assert "added data (21 files" in out
    for rel in ("data/f3.txt", "data/f7.txt"):
        oid = hashing.hash_bytes(files[rel])
        assert _obj(project, oid).read_bytes() == files[rel]
        assert (project.root / ".conveyor/cache/quarantine" / oid).read_bytes() == b"rot\n"
    _usable_everywhere(project, tmp_path / "store", files)


@pytest.mark.parametrize("mode", ["journal", "journal-named", "true"])
def test_adding_a_copied_folder_of_many_files_repairs_corrupt_objects_in_every_process(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # Two cores at least, so that the storing processes run even on a one-core machine.
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    if mode == "journal-named":  # a filesystem without unnamed files: named temp files instead
        monkeypatch.setattr(build, "_UNNAMED", [False])
    project.ok("config", "core.fsync", mode.split("-")[0])
    spawned: list[int] = []
    real = build._store_in_processes

    def spy(small, store, cores, progress):  # type: ignore[no-untyped-def]
        spawned.append(len(small))
        return real(small, store, cores, progress)

    monkeypatch.setattr(build, "_store_in_processes", spy)
    files = {f"data/d{i % 10}/f{i}.bin": f"{i:08}".encode() * 64 for i in range(2500)}
    for rel, good in files.items():
        project.write(rel, good)
    project.ok("add", "data")
    spoiled = [f"data/d{i % 10}/f{i}.bin" for i in (0, 999, 2499)]
    for rel in spoiled:
        corrupt(project, hashing.hash_bytes(files[rel]), b"rot\n")
    shutil.rmtree(project.root / "data")  # a good copy of the whole folder comes back
    for rel, good in files.items():
        project.write(rel, good)
    project.ok("add", "data")
    assert spawned == [2500, 2500]
    for rel in spoiled:
        oid = hashing.hash_bytes(files[rel])
        assert _obj(project, oid).read_bytes() == files[rel]
        assert stamped(oid, _obj(project, oid).stat())
    assert "no corruption found" in project.ok("fsck")
    shutil.rmtree(project.root / "data")
    project.ok("checkout")
    assert all((project.root / rel).read_bytes() == good for rel, good in files.items())
