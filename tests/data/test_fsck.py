from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conveyor.data.fsck import cross_check
from conveyor.data.hashing import hash_bytes
from conveyor.data.pointer import Pointer
from conveyor.data.tree import Entry, Tree
from tests.conftest import Project

A, B, C, T = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


@pytest.fixture
def tracked(project: Project) -> Project:
    for i in range(8):
        project.write(f"data/d{i % 2}/f{i}.txt", f"row {i}\n")
    project.write("model.bin", b"\x07" * 5000)
    project.ok("add", "data", "model.bin")
    return project


def object_path(project: Project, oid: str) -> Path:
    return project.root / ".conveyor/cache/objects" / oid[:2] / oid[2:]


def corrupt(project: Project, oid: str) -> None:
    """Flip one byte of a cached object, as a bad disk or a stray write would."""
    path = object_path(project, oid)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    path.chmod(0o444)


def oid_of(text: str | bytes) -> str:
    return hash_bytes(text.encode() if isinstance(text, str) else text)


# -- the pure core ---------------------------------------------------------------------------
def test_cross_check_maps_oids_to_paths_and_finds_missing() -> None:
    folder = Pointer(Path("/p/data.cvy"), "data", T, True, 3, 2)
    single = Pointer(Path("/p/m.cvy"), "m", C, False, 1, 1)
    tree = Tree.of([Entry("x", A, 1), Entry("y/z", B, 2)])
    pointers = [("data.cvy", "data", folder), ("m.cvy", "m", single)]
    uses = cross_check(pointers, {T: tree}, present={A, T})
    assert uses.used_by[B] == ["data/y/z (data.cvy)"]
    assert uses.used_by[T] == ["data (data.cvy)"]
    assert [(m.pointer, m.oids) for m in uses.missing] == [("data.cvy", (B,)), ("m.cvy", (C,))]


# -- against real files ----------------------------------------------------------------------
def test_fsck_of_a_healthy_cache(tracked: Project) -> None:
    out = tracked.ok("fsck")
    assert "checked 10 object(s)" in out and "no corruption found" in out


def test_fsck_quarantines_a_corrupt_object_and_names_its_path(tracked: Project) -> None:
    bad = oid_of("row 5\n")
    corrupt(tracked, bad)
    result = tracked.run("fsck")
    assert result.code == 1
    assert f"corrupt: {bad}" in result.out
    assert "used by data/d1/f5.txt (data.cvy)" in result.out
    assert "error: fsck found 1 corrupt object(s)" in result.err
    assert "conveyor pull" in result.err and "Traceback" not in result.err
    assert not object_path(tracked, bad).exists()
    assert (tracked.root / ".conveyor/cache/quarantine" / bad).exists()
    # Now the object is simply missing: status says so and a second fsck passes.
    assert "1 object(s) not in cache" in tracked.ok("status")
    again = tracked.ok("fsck")
    assert "missing: data (data.cvy): 1 object(s)" in again and "conveyor pull" in again


def test_fsck_json(tracked: Project) -> None:
    bad = oid_of(b"\x07" * 5000)
    corrupt(tracked, bad)
    result = tracked.run("fsck", "--json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["ok"] is False and report["checked"] == 10
    [entry] = report["corrupt"]
    assert entry["oid"] == bad and entry["used_by"] == ["model.bin (model.bin.cvy)"]
    assert entry["quarantined"] == f".conveyor/cache/quarantine/{bad}"
    assert report["missing"] == [] and report["invalid_trees"] == []


def test_fsck_quarantines_a_corrupt_tree(tracked: Project) -> None:
    ref = (tracked.root / "data.cvy").read_text().split("hash: ")[1].split()[0]
    tree = ref.removesuffix(".tree")
    corrupt(tracked, tree)
    result = tracked.run("fsck", "--json")
    [entry] = json.loads(result.out)["corrupt"]
    assert entry["oid"] == tree and entry["used_by"] == ["data (data.cvy)"]
    assert result.code == 1


def test_fsck_reports_an_invalid_tree(tracked: Project) -> None:
    # A pointer that calls a plain file's object a tree: the bytes are sound, the tree is not.
    plain = oid_of("row 0\n")
    (tracked.root / "other.cvy").write_text(f"path: other\nhash: {plain}.tree\nnfiles: 1\n")
    result = tracked.run("fsck")
    assert result.code == 1
    assert f"invalid tree: tree object {plain} is not a valid tree" in result.out
    assert "named by other (other.cvy)" in result.out
    assert object_path(tracked, plain).exists()  # not corrupt: nothing is quarantined


def test_fsck_reports_missing_objects_without_failing(tracked: Project) -> None:
    object_path(tracked, oid_of("row 2\n")).unlink()
    object_path(tracked, oid_of(b"\x07" * 5000)).unlink()
    report = json.loads(tracked.ok("fsck", "--json"))
    assert report["ok"] is True
    assert [(m["path"], len(m["oids"])) for m in report["missing"]] == [
        ("data", 1),
        ("model.bin", 1),
    ]


def test_fsck_reports_an_unreadable_pointer(tracked: Project) -> None:
    (tracked.root / "model.bin.cvy").write_text("path: model.bin\nhash: [oops\n")
    result = tracked.run("fsck")
    assert result.code == 1
    assert "bad pointer: model.bin.cvy:3: not valid YAML" in result.out
    assert "restore the pointers above from git" in result.err


def test_checkout_verify_refuses_a_corrupt_object(tracked: Project) -> None:
    bad = oid_of("row 3\n")
    corrupt(tracked, bad)
    shutil.rmtree(tracked.root / "data")
    result = tracked.run("checkout", "--verify")
    assert result.code == 1 and "corrupt" in result.err and "Traceback" not in result.err
    assert not (tracked.root / "data").exists()
    assert (tracked.root / ".conveyor/cache/quarantine" / bad).exists()
    # Without the corrupt object, a plain checkout refuses rather than write bad bytes.
    result = tracked.run("checkout")
    assert result.code == 1 and "not in the cache" in result.err


def test_readding_the_good_file_repairs_the_cache(tracked: Project) -> None:
    bad = oid_of("row 4\n")
    corrupt(tracked, bad)
    assert tracked.run("fsck").code == 1
    # The workspace copy is still good (cache.type copies): adding it stores it again.
    tracked.ok("add", "data")
    assert "no corruption found" in tracked.ok("fsck")
    assert "not in cache" not in tracked.ok("status")


def test_recovering_from_corruption_with_fsck_then_pull(tracked: Project) -> None:
    tracked.ok("remote", "add", "-d", "store", "../store")
    tracked.ok("push")
    bad = oid_of("row 6\n")
    corrupt(tracked, bad)
    assert tracked.run("fsck").code == 1
    out = tracked.ok("pull")
    assert "pulled 1 object" in out
    assert "no corruption found" in tracked.ok("fsck")
    shutil.rmtree(tracked.root / "data")
    tracked.ok("checkout", "--verify")
    assert (tracked.root / "data/d0/f6.txt").read_text() == "row 6\n"
    assert "clean" in tracked.ok("status") and "not in cache" not in tracked.ok("status")
