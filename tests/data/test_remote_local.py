"""The folder remote beyond the shared contract: batched flushes, temp folders, worker processes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.data import hashing, remote_local
from conveyor.data.hashing import hash_bytes
from conveyor.data.remote import Fetched, MissingObject, RemoteSpec
from conveyor.data.remote_local import LocalRemote
from conveyor.data.transfer_io import Scratch
from conveyor.foundation import atomic
from conveyor.foundation.errors import DataError, RemoteError


@pytest.fixture
def remote(tmp_path: Path) -> LocalRemote:
    return LocalRemote(RemoteSpec.of("store", "store", {}, root=tmp_path), jobs=2)


def _sources(tmp_path: Path, count: int, size: int = 100) -> dict[str, Path]:
    out = {}
    for i in range(count):
        data = i.to_bytes(4, "big") * (size // 4)
        path = tmp_path / "src" / str(i)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        out[hash_bytes(data)] = path
    return out


def _upload(remote: LocalRemote, sources: dict[str, Path]) -> None:
    items = [(str(path), oid) for oid, path in sources.items()]
    remote.upload_many(items, jobs=2, done=lambda _: None)


def test_uploads_are_flushed_once_per_group_not_once_per_file(
    remote: LocalRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    syncfs = atomic.syncfs
    monkeypatch.setattr(atomic, "syncfs", lambda p: (calls.append("syncfs"), syncfs(p))[1])
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    _upload(remote, _sources(tmp_path, 50))
    assert calls == ["syncfs", "syncfs"]  # before the renames, and after them
    assert len(list(remote.iter_oids())) == 50
    assert os.listdir(remote.tmp) == []


def test_the_temp_folders_of_a_dead_uploader_on_this_machine_are_removed(
    remote: LocalRemote, tmp_path: Path
) -> None:
    code = "import os; print(os.getpid())"
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    host = remote._host
    left = {
        f"{dead.strip()}.{host}.0a1b2c3d.t1": False,  # dead: removed
        f"{os.getpid()}.{host}.0a1b2c3d.t1": True,  # alive: still uploading
        f"{dead.strip()}.other-host.0a1b2c3d.t1": True,  # not ours to judge
    }
    for name in left:
        Path(remote.tmp, name).mkdir(parents=True)
        Path(remote.tmp, name, "0").write_bytes(b"partial")
    _upload(remote, _sources(tmp_path, 3))
    assert {n: Path(remote.tmp, n).exists() for n in left} == left


def test_large_objects_are_copied_and_hashed_from_the_copy(
    remote: LocalRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashing, "SMALL", 64)  # everything above 64 bytes counts as large
    sources = _sources(tmp_path, 3, size=1000)
    _upload(remote, sources)
    for oid, path in sources.items():
        dest = tmp_path / f"back-{oid}"
        assert remote.download(oid, str(dest)) == oid
        assert dest.read_bytes() == path.read_bytes()
        assert dest.stat().st_mode & 0o222 == 0
    oid = next(iter(sources))
    os.chmod(remote.path(oid), 0o644)
    Path(remote.path(oid)).write_bytes(b"x" * 500)
    assert remote.download(oid, str(tmp_path / "rot")) == hash_bytes(b"x" * 500)


@pytest.mark.parametrize("large", [False, True])
def test_many_downloads_run_in_worker_processes(
    remote: LocalRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large: bool
) -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: downloads stay in threads")
    monkeypatch.setattr(remote_local, "_MANY", 1)
    if large:  # copied and hashed from the copy, on one thread in a worker
        monkeypatch.setattr(hashing, "SMALL", 64)
    sources = _sources(tmp_path, 40)
    _upload(remote, sources)
    absent = hash_bytes(b"absent")
    got: dict[str, Fetched] = {}
    pids: set[str] = set()

    def done(oid: str, fetched: Fetched) -> None:
        got[oid] = fetched
        if fetched.path is not None:  # what a landing does: take the file out of the scratch
            pids.add(Path(fetched.path).parent.name.rsplit(".", 1)[1])
            os.replace(fetched.path, tmp_path / oid)

    folder = tmp_path / "tmp"
    folder.mkdir()
    with Scratch(folder, f"{os.getpid()}.test") as scratch:
        remote.download_many([*sources, absent], scratch, jobs=2, done=done)
    assert got[absent] == Fetched(None)
    for oid, path in sources.items():
        assert (got[oid].digest, got[oid].size) == (oid, path.stat().st_size)
        assert (tmp_path / oid).read_bytes() == path.read_bytes()
    assert all(p.startswith("p") and p[1:] != str(os.getpid()) for p in pids)
    assert list(folder.iterdir()) == []  # the workers' scratch folders are gone


def test_an_error_in_a_worker_process_stops_the_download(
    remote: LocalRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: downloads stay in threads")
    monkeypatch.setattr(remote_local, "_MANY", 1)
    sources = _sources(tmp_path, 10)
    _upload(remote, sources)
    broken = sorted(sources)[3]
    os.unlink(remote.path(broken))
    os.mkdir(remote.path(broken))  # unreadable as a file
    folder = tmp_path / "tmp"
    folder.mkdir()
    error = pytest.raises(RemoteError, match=f"remote 'store' .*downloading object {broken}")
    with error, Scratch(folder, f"{os.getpid()}.test") as scratch:
        remote.download_many(sorted(sources), scratch, jobs=2, done=lambda o, f: None)
    assert list(folder.iterdir()) == []  # partial downloads are removed with the scratch


def test_a_full_cache_disk_is_a_storage_error(
    remote: LocalRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = _sources(tmp_path, 1)
    _upload(remote, sources)

    def full(path: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(remote_local, "write_new", full)
    with pytest.raises(DataError, match=r"cannot store object .* No space left") as info:
        remote.download(next(iter(sources)), str(tmp_path / "dest"))
    assert info.value.hint == "free some disk space, then run the command again"


def test_missing_object_and_absent_remote(remote: LocalRemote, tmp_path: Path) -> None:
    with pytest.raises(MissingObject):
        remote.download(hash_bytes(b"nothing"), str(tmp_path / "dest"))
    assert not (tmp_path / "dest").exists()
    remote.remove([hash_bytes(b"nothing")])  # nothing to remove is fine


def test_many_objects_are_checked_by_listing_shards(
    remote: LocalRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = _sources(tmp_path, 40)
    stored = sorted(sources)[::2]
    _upload(remote, {oid: sources[oid] for oid in stored})

    def one_by_one(oid: str) -> str:
        raise AssertionError("looked at one object at a time")

    monkeypatch.setattr(remote, "path", one_by_one)
    assert remote.exists_many(sources) == set(stored)
