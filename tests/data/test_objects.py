from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conveyor.data import hashing
from conveyor.data.objects import ObjectDB


def temp_files(odb: ObjectDB) -> list[str]:
    return [f for _, _, files in os.walk(odb.tmp) for f in files]


@pytest.fixture
def odb(tmp_path: Path) -> ObjectDB:
    return ObjectDB(tmp_path / "objects", tmp_path / "tmp")


def test_objects_are_sharded_and_read_only(odb: ObjectDB) -> None:
    with odb.batch() as batch:
        oid = batch.add_bytes(b"hello")
    path = odb.path(oid)
    assert path.parent.name == oid[:2] and path.name == oid[2:]
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list(odb.iter_oids()) == [oid]
    assert odb.verify(oid)


def test_nothing_is_visible_before_the_batch_commits(odb: ObjectDB, tmp_path: Path) -> None:
    batch = odb.batch()
    oid = batch.add_bytes(b"pending")
    assert not odb.exists(oid)
    batch.commit()
    assert odb.exists(oid)


def test_a_failed_batch_leaves_nothing(odb: ObjectDB) -> None:
    with pytest.raises(RuntimeError), odb.batch() as batch:
        oid = batch.add_bytes(b"lost")
        raise RuntimeError
    assert not odb.exists(oid)
    assert temp_files(odb) == []


def test_large_file_is_copied_and_hashed_once(odb: ObjectDB, tmp_path: Path) -> None:
    data = os.urandom(hashing.SMALL + 1)
    src = tmp_path / "big"
    src.write_bytes(data)
    with odb.batch() as batch:
        oid = batch.add_file(str(src), len(data))
        again = batch.add_file(str(src), len(data))
    assert oid == again == hashing.hash_bytes(data)
    assert odb.path(oid).read_bytes() == data
    assert temp_files(odb) == []


def test_clean_tmp_removes_dead_writers_leftovers(odb: ObjectDB) -> None:
    odb.tmp.mkdir(parents=True)
    dead = odb.tmp / "999999999.1.tmp"  # no such pid
    dead_dir = odb.tmp / "999999998.77.d"
    dead_dir.mkdir()
    (dead_dir / "3.tmp").write_bytes(b"z")
    mine = odb.temp_path()  # this process is alive: its temp folder stays
    dead.write_bytes(b"x")
    assert odb.clean_tmp() == 2
    assert not dead.exists() and not dead_dir.exists()
    assert os.path.isdir(os.path.dirname(mine))


def test_each_thread_writes_temps_in_its_own_folder(odb: ObjectDB) -> None:
    import threading

    folders = set()
    together = threading.Barrier(3)

    def grab() -> None:
        folders.add(os.path.dirname(odb.temp_path()))
        together.wait()  # all three alive at once: no thread ident is reused

    threads = [threading.Thread(target=grab) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    folders.add(os.path.dirname(odb.temp_path()))
    assert len(folders) == 4


def test_quarantine_moves_a_corrupt_object_aside(odb: ObjectDB, tmp_path: Path) -> None:
    with odb.batch() as batch:
        oid = batch.add_bytes(b"good")
    path = odb.path(oid)
    path.chmod(0o644)
    path.write_bytes(b"evil")
    assert not odb.verify(oid)
    moved = odb.quarantine(oid, tmp_path / "q")
    assert moved.read_bytes() == b"evil" and not odb.exists(oid)


@pytest.mark.parametrize("step_ns", [1_000_000_000, 2_000_000_000, 1_000, 100])
def test_a_write_on_a_coarse_filesystem_is_never_taken_for_a_stamp(
    odb: ObjectDB, step_ns: int
) -> None:
    """A filesystem keeping mtimes in steps of ``step_ns`` cannot exist here (tmpfs and ext4 keep
    nanoseconds), so what it stores after a write, a multiple of its step, is set by hand."""
    # 0x3b9aca00 is 10**9: the first 8 hex digits whose old stamp (oid[:8] % 10**9) was 0.
    oid = "3b9aca00" + hashing.hash_bytes(b"x")[8:]
    path = odb.path(oid)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"bytes that do not hash to the oid")
    mtime = (path.stat().st_mtime_ns // step_ns) * step_ns
    os.utime(path, ns=(mtime, mtime))
    assert not odb.check(oid)  # not taken for a stamp: re-hashed, found corrupt


def test_an_oid_prefix_names_the_objects_it_starts(odb: ObjectDB) -> None:
    with odb.batch() as batch:
        oids = sorted(batch.add_bytes(str(i).encode()) for i in range(600))
    oid = oids[0]
    (odb.root / oid[:2] / f"{oid[2:6]}.tmp").write_bytes(b"")  # not an object
    assert odb.starting_with(oid[:12]) == [oid]
    assert odb.starting_with(oid[:2]) == [o for o in oids if o.startswith(oid[:2])]
    assert odb.starting_with("zz") == [] and odb.starting_with(oid[:2] + "x") == []
