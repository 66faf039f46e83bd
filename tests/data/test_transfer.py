"""push and pull through the real CLI: a folder remote, and S3 (moto) on loopback."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from conveyor.data import remote_local
from conveyor.data.hashing import hash_bytes, hash_file
from conveyor.data.objects import ObjectDB
from conveyor.data.transfer import Needed, plan_push
from conveyor.data.transfer_io import Landing, Scratch, parallel, run_length
from tests.conftest import Project

FILES = {
    "data/a.csv": "x,y\n1,2\n",
    "data/b.csv": "x,y\n3,4\n",
    "data/sub/c.txt": "c\n" * 100,
    "data/sub/d.txt": "",
    "model.bin": "weights" * 50,
}
# 4 files + 1 tree under data/ (the empty file is an object too), 1 file for model.bin.
N_OBJECTS = 6


@pytest.fixture
def tracked(project: Project) -> Project:
    """A project with data/ (a folder) and model.bin tracked, and a folder remote as default."""
    for rel, text in FILES.items():
        project.write(rel, text)
    project.ok("add", "data", "model.bin")
    project.ok("remote", "add", "-d", "store", "../store")
    return project


def store_of(project: Project) -> Path:
    return project.root.parent / "store"


def remote_oids(store: Path) -> set[str]:
    return {p.parent.name + p.name for p in store.glob("??/*")}


def oid_of(text: str) -> str:
    return hash_bytes(text.encode())


def wipe(project: Project) -> None:
    """Lose the cache and the data, as a fresh clone would."""
    shutil.rmtree(project.root / ".conveyor" / "cache")
    shutil.rmtree(project.root / "data")
    (project.root / "model.bin").unlink()


def assert_restored(project: Project) -> None:
    for rel, text in FILES.items():
        assert (project.root / rel).read_text() == text, rel
    states = json.loads(project.ok("status", "--json"))["data"]
    assert [(s["path"], s["state"], s["not_in_cache"]) for s in states] == [
        ("data", "clean", 0),
        ("model.bin", "clean", 0),
    ]
    assert_cache_sound(project.root)


def assert_cache_sound(root: Path) -> None:
    """Every file under objects/ holds exactly the bytes its name says."""
    for path in (root / ".conveyor" / "cache" / "objects").glob("*/*"):
        assert hash_file(path) == path.parent.name + path.name, path


def test_push_wipe_pull_restores_everything(tracked: Project) -> None:
    out = tracked.ok("push")
    assert out.startswith(f"pushed {N_OBJECTS} objects (")
    assert out.strip().endswith("to store, 0 already there")
    assert len(remote_oids(store_of(tracked))) == N_OBJECTS
    wipe(tracked)
    out = tracked.ok("pull")
    assert f"pulled {N_OBJECTS} objects (" in out
    assert "from store, 0 already there" in out
    assert "data: 4 added, 0 modified, 0 deleted" in out
    assert_restored(tracked)


def test_pull_in_worker_processes(tracked: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_local, "_MANY", 1)  # as for thousands of objects
    tracked.ok("push")
    wipe(tracked)
    assert f"pulled {N_OBJECTS} objects (" in tracked.ok("pull", "-j", "2")
    assert_restored(tracked)
    assert list((tracked.root / ".conveyor/tmp").iterdir()) == []


def test_second_push_and_pull_transfer_nothing(tracked: Project) -> None:
    tracked.ok("push")
    out = tracked.ok("push")
    assert out.strip() == f"pushed 0 objects (0 B) to store, {N_OBJECTS} already there"
    out = tracked.ok("pull")
    assert out.strip() == f"pulled 0 objects (0 B) from store, {N_OBJECTS} already there"


def test_only_what_the_other_side_lacks_is_transferred(tracked: Project) -> None:
    store = store_of(tracked)
    tracked.ok("push")
    lost = [oid_of(FILES["data/a.csv"]), oid_of(FILES["model.bin"])]
    for oid in lost:
        (store / oid[:2] / oid[2:]).unlink()
    out = tracked.ok("push")
    assert out.startswith("pushed 2 objects (")
    assert f"{N_OBJECTS - 2} already there" in out
    assert len(remote_oids(store)) == N_OBJECTS
    # And the other way: a cache missing two objects fetches just those two.
    odb = ObjectDB(tracked.root / ".conveyor/cache/objects", tracked.root / ".conveyor/tmp")
    for oid in lost:
        odb.remove(oid)
    out = tracked.ok("pull")
    assert out.startswith("pulled 2 objects (")
    assert f"{N_OBJECTS - 2} already there" in out
    assert_restored(tracked)


def test_paths_limit_what_moves(tracked: Project) -> None:
    out = tracked.ok("push", "model.bin")
    assert out.startswith("pushed 1 object (")
    assert remote_oids(store_of(tracked)) == {oid_of(FILES["model.bin"])}
    tracked.ok("push", "data.cvy", "-j", "1")
    wipe(tracked)
    out = tracked.ok("pull", "data")
    assert out.startswith(f"pulled {N_OBJECTS - 1} objects (")
    assert (tracked.root / "data/sub/c.txt").read_text() == FILES["data/sub/c.txt"]
    assert not (tracked.root / "model.bin").exists()


def test_corrupt_object_on_the_remote_is_refused(tracked: Project) -> None:
    store = store_of(tracked)
    tracked.ok("push")
    bad = oid_of(FILES["data/sub/c.txt"])
    target = store / bad[:2] / bad[2:]
    target.write_bytes(b"bit rot")
    wipe(tracked)
    result = tracked.run("pull")
    assert result.code == 1
    assert f"pulled {N_OBJECTS - 1} objects (" in result.out
    assert "model.bin: 1 added" in result.out  # complete pointers are still checked out
    assert "error: 1 object is corrupt on remote 'store' and not stored: " in result.err
    assert f"{bad} holds bytes that hash to {oid_of('bit rot')}" in result.err
    assert f"{store}/{bad[:2]}/{bad[2:]}" in result.err
    assert "Traceback" not in result.err
    assert not (tracked.root / ".conveyor/cache/objects" / bad[:2] / bad[2:]).exists()
    assert not (tracked.root / "data").exists()
    assert_cache_sound(tracked.root)
    assert list((tracked.root / ".conveyor/tmp").iterdir()) == []


def test_objects_missing_on_the_remote_are_named_by_path(tracked: Project) -> None:
    store = store_of(tracked)
    tracked.ok("push")
    gone = oid_of(FILES["data/b.csv"])
    (store / gone[:2] / gone[2:]).unlink()
    wipe(tracked)
    result = tracked.run("pull")
    assert result.code == 1
    assert (
        "error: 1 object is not on remote 'store' "
        f"({store}), so not pulled: data/b.csv; everything else was transferred"
    ) in result.err
    assert "conveyor push -r store" in result.err
    assert (tracked.root / "model.bin").read_text() == FILES["model.bin"]
    assert f"pulled {N_OBJECTS - 1} objects" in result.out


def test_pull_from_an_empty_remote_names_every_path(tracked: Project) -> None:
    wipe(tracked)
    result = tracked.run("pull")
    assert result.code == 1
    assert "2 objects are not on remote 'store'" in result.err
    assert "so not pulled: data, model.bin" in result.err


def test_push_of_objects_the_cache_lacks(tracked: Project) -> None:
    odb = ObjectDB(tracked.root / ".conveyor/cache/objects", tracked.root / ".conveyor/tmp")
    lost = oid_of(FILES["data/sub/d.txt"])
    odb.remove(lost)
    result = tracked.run("push")
    assert result.code == 1
    assert "1 object is neither in the cache nor on remote 'store'" in result.err
    assert "so not pushed: data/sub/d.txt" in result.err
    # The folder's tree waits until all its files are there: a tree on a remote is complete.
    assert remote_oids(store_of(tracked)) == {
        oid_of(FILES[r]) for r in ("data/a.csv", "data/b.csv", "data/sub/c.txt", "model.bin")
    }


def test_pull_keeps_unsaved_changes_unless_forced(tracked: Project) -> None:
    tracked.ok("push")
    tracked.write("model.bin", "my local edit")
    result = tracked.run("pull")
    assert result.code == 1
    assert "checkout would discard changes that are not in the cache" in result.err
    tracked.ok("pull", "--force")
    assert (tracked.root / "model.bin").read_text() == FILES["model.bin"]


def damage(project: Project, oid: str, data: bytes) -> None:
    """Corrupt a cache object for real (made writable and written over)."""
    obj = project.root / ".conveyor/cache/objects" / oid[:2] / oid[2:]
    obj.chmod(0o644)
    obj.write_bytes(data)


def test_push_refuses_a_corrupt_cache_object(tracked: Project) -> None:
    bad = oid_of(FILES["data/sub/c.txt"])
    damage(tracked, bad, b"bit rot")
    result = tracked.run("push")
    assert result.code == 1, result.err
    assert "1 object is corrupt in the cache" in result.err and bad in result.err
    assert "so not pushed: data/sub/c.txt" in result.err
    assert "conveyor fsck" in result.err and "Traceback" not in result.err
    # Neither the bad bytes nor the folder's tree (a tree on a remote is complete) went up.
    assert remote_oids(store_of(tracked)) == {
        oid_of(FILES[r]) for r in ("data/a.csv", "data/b.csv", "data/sub/d.txt", "model.bin")
    }
    assert "corrupt" in tracked.run("fsck").out
    tracked.write("data/sub/c.txt", FILES["data/sub/c.txt"])
    tracked.ok("add", "data")  # a good copy again: now everything goes
    tracked.ok("push")
    assert len(remote_oids(store_of(tracked))) == N_OBJECTS
    for oid in remote_oids(store_of(tracked)):
        assert hash_file(store_of(tracked) / oid[:2] / oid[2:]) == oid


def test_push_rehashes_an_unstamped_object_once(tracked: Project) -> None:
    """An object written to with the same bytes (or from an older cache) is checked, pushed,
    and stamped, so the next push needs only its stat."""
    from conveyor.data.objects import stamped

    oid = oid_of(FILES["model.bin"])
    damage(tracked, oid, FILES["model.bin"].encode())
    obj = tracked.root / ".conveyor/cache/objects" / oid[:2] / oid[2:]
    assert not stamped(oid, obj.stat())
    tracked.ok("push")
    assert oid in remote_oids(store_of(tracked)) and stamped(oid, obj.stat())


@pytest.mark.parametrize("link", ["copy", "hardlink", "symlink", "reflink"])
def test_pull_never_writes_through_a_symlinked_folder(
    tracked: Project, tmp_path: Path, link: str
) -> None:
    tracked.ok("config", "cache.type", link)
    tracked.ok("push")
    wipe(tracked)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tracked.root / "data").mkdir()
    os.symlink(outside, tracked.root / "data/sub")
    result = tracked.run("pull")
    assert result.code == 2, result.err
    assert "data/sub is a symbolic link to" in result.err and "outside the project" in result.err
    assert list(outside.iterdir()) == []
    assert "Traceback" not in result.err


def _one_out(project: Project, declared: str, locked: str) -> None:
    """A stage declaring the out ``declared``, whose lock entry names ``locked`` (model.bin's
    bytes): the lock is what push and pull read."""
    model = oid_of(FILES["model.bin"])
    project.write("conveyor.yaml", f"stages:\n  s:\n    cmd: 'true'\n    outs: [{declared}]\n")
    project.write(
        "conveyor.lock",
        "schema: 1\nstages:\n  s:\n    cmd: 'true'\n    outs:\n"
        f"      - path: {locked}\n        hash: {model}\n        size: 350\n        nfiles: 1\n",
    )


def test_pull_of_an_out_under_a_parent_linking_out_of_the_project_is_refused(
    tracked: Project, tmp_path: Path
) -> None:
    _one_out(tracked, "link/out.bin", "link/out.bin")
    tracked.ok("push")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, tracked.root / "link")
    result = tracked.run("pull")
    assert result.code == 2, result.err
    assert "path link/out.bin lies under link, a symbolic link to" in result.err
    assert list(outside.iterdir()) == []


def test_pull_of_a_lock_out_naming_git_is_refused(tracked: Project) -> None:
    """conveyor.lock names outs that push and pull move: a hostile one is refused by name."""
    _one_out(tracked, "out.bin", ".git/hooks/post-merge")
    hooks = sorted(p.name for p in (tracked.root / ".git/hooks").iterdir())
    result = tracked.run("pull")
    assert result.code == 2, result.err
    assert "conveyor.lock:5: stage 's': out .git/hooks/post-merge" in result.err
    assert sorted(p.name for p in (tracked.root / ".git/hooks").iterdir()) == hooks


def test_pull_of_an_out_whose_folder_is_a_file_is_a_clear_error(tracked: Project) -> None:
    """A stage's out data/prepared/x.csv, pulled while data/prepared is a plain file."""
    _one_out(tracked, "prepared/x.csv", "prepared/x.csv")
    tracked.write("prepared", "a file\n")
    tracked.ok("push")
    result = tracked.run("pull")
    assert result.code == 2, result.err
    assert "cannot write prepared/x.csv: a file is in the way of the folder prepared" in result.err
    assert "Traceback" not in result.err
    assert (tracked.root / "prepared").read_text() == "a file\n"


# -- S3 on loopback (moto_endpoint and s3_bucket: tests/data/conftest.py) ----------------------
def test_push_pull_through_s3(tracked: Project, moto_endpoint: str, s3_bucket: str) -> None:
    import boto3

    bucket = s3_bucket
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    tracked.ok("remote", "add", "s3", f"s3://{bucket}/store")
    tracked.ok("config", "remote.s3.endpoint_url", moto_endpoint)

    out = tracked.ok("push", "-r", "s3")
    assert out.startswith(f"pushed {N_OBJECTS} objects (")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    oid = oid_of(FILES["model.bin"])
    assert f"store/{oid[:2]}/{oid[2:]}" in keys and len(keys) == N_OBJECTS
    assert tracked.ok("push", "-r", "s3").startswith("pushed 0 objects (0 B)")
    wipe(tracked)
    out = tracked.ok("pull", "-r", "s3", "-j", "3")
    assert out.startswith(f"pulled {N_OBJECTS} objects (")
    assert_restored(tracked)


# -- the pure core and the moving parts ----------------------------------------------------------
def test_plan_push_sends_files_then_only_complete_trees() -> None:
    needed = Needed(
        files={"f1": 1, "f2": 2, "f3": 3},
        trees={"t1": frozenset({"f1", "f2"}), "t2": frozenset({"f3"})},
        unknown_trees={"t3"},
    )
    plan = plan_push(needed, in_cache={"f1", "f2", "t1", "t2"}, on_remote={"f2"})
    assert plan.files == ("f1",)
    assert plan.trees == ("t1",)  # t2 waits: its f3 is nowhere
    assert plan.already == {"f2"}
    assert plan.missing == {"f3", "t3"}


def test_parallel_stops_at_the_first_error() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        if i == 3:
            raise RuntimeError("boom")
        return i * 2

    done: list[tuple[int, int]] = []
    with pytest.raises(RuntimeError, match="boom"):
        parallel(range(1000), work, 2, lambda i, r: done.append((i, r)))
    assert len(started) < 50  # bounded in flight: the rest never started
    assert all(r == i * 2 for i, r in done)


def test_parallel_hands_out_runs_of_items() -> None:
    threads: dict[int, set[int]] = {}
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            threads.setdefault(i // 7, set()).add(threading.get_ident())
        return i * 2

    done: list[tuple[int, int]] = []
    parallel(range(100), work, 3, lambda i, r: done.append((i, r)), run=7)
    assert sorted(done) == [(i, i * 2) for i in range(100)]
    assert all(len(t) == 1 for t in threads.values())  # a run stays on one thread
    assert run_length(20_000, 4) == 64 and run_length(100, 4) == 3 and run_length(3, 4) == 1


def test_scratch_gives_each_thread_a_folder_and_removes_them(tmp_path: Path) -> None:
    names: list[str] = []
    with Scratch(tmp_path, "123.abc") as scratch:
        threads = [threading.Thread(target=lambda: names.append(scratch.path())) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        names.append(scratch.path())
        assert len(set(names)) == 4
        assert all(os.path.basename(os.path.dirname(n)).startswith("123.abc.") for n in names)
    assert list(tmp_path.iterdir()) == []
    # After an error, what is still in the folders goes with them.
    with pytest.raises(RuntimeError), Scratch(tmp_path, "123.abc") as scratch:
        Path(scratch.path()).write_bytes(b"partial")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_landing_puts_verified_files_in_place(tmp_path: Path) -> None:
    odb = ObjectDB(tmp_path / "objects", tmp_path / "tmp", sync="never")
    with Landing.into(odb, group=2) as landing:
        for i in range(3):
            data = f"object {i}".encode()
            tmp = odb.tmp / f"{i}.tmp"
            tmp.write_bytes(data)
            landing.add(str(tmp), hash_bytes(data))
        assert len(list(odb.iter_oids())) == 2  # the first group is in place already
    assert len(list(odb.iter_oids())) == 3
    assert list((tmp_path / "tmp").iterdir()) == []
