"""The journal of objects named before their bytes were on disk: settled, or checked after a crash.

A crash cannot be staged here, but what it leaves can: a journal written under another boot id
(a restart changes it) naming objects whose bytes are wrong, as they would be if the machine had
stopped before writing them back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor.data import journal
from conveyor.data.hashing import hash_bytes
from conveyor.data.objects import ObjectDB
from tests.conftest import Project

pytestmark = pytest.mark.skipif(journal.boot_id() is None, reason="needs Linux's boot id")

OTHER_BOOT = "0" * 32


def name(boot: str | None = None, pid: int | None = None, host: str | None = None) -> str:
    host = journal.machine() if host is None else host
    boot = journal.boot_id() if boot is None else boot
    return f"{host}.{boot}.{os.getpid() if pid is None else pid}.0x0"


def make_odb(tmp_path: Path, sync: str = "journal") -> ObjectDB:
    return ObjectDB(tmp_path / "cache/objects", tmp_path / "tmp", sync=sync)


def store(odb: ObjectDB, *blobs: bytes) -> list[str]:
    with odb.batch() as batch:
        return [batch.add_bytes(b) for b in blobs]


def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def test_a_batch_writes_its_journal_before_naming(tmp_path: Path) -> None:
    odb = make_odb(tmp_path)
    oids = store(odb, b"one", b"two")
    (entry,) = odb.journal.iterdir()
    host, boot, pid, _token = entry.name.split(".")
    assert host == journal.machine() and boot == journal.boot_id() and int(pid) == os.getpid()
    assert sorted(entry.read_text().split()) == sorted(oids)
    assert all(odb.exists(o) for o in oids)


@pytest.mark.parametrize("sync", ["always", "never"])
def test_other_modes_write_no_journal(tmp_path: Path, sync: str) -> None:
    odb = make_odb(tmp_path, sync)
    (oid,) = store(odb, b"data")
    assert odb.exists(oid) and not odb.journal.exists()


def test_after_a_crash_corrupt_objects_are_quarantined_and_good_ones_kept(tmp_path: Path) -> None:
    odb = make_odb(tmp_path)
    good, bad = store(odb, b"reached the disk", b"did not")
    for entry in odb.journal.iterdir():  # as if written before the last restart
        entry.rename(odb.journal / name(OTHER_BOOT))
    path = odb.path(bad)
    path.chmod(0o644)
    path.write_bytes(b"\0" * 7)  # what a crash can leave: a named file without its bytes
    before = odb.generation()
    result = odb.recover()
    assert result.checked == 2 and result.corrupt == (bad,)
    assert odb.exists(good) and not odb.exists(bad)
    assert (odb.quarantined / bad).read_bytes() == b"\0" * 7
    assert list(odb.journal.iterdir()) == []
    assert odb.generation() != before  # trees once complete must be looked at again


def test_objects_a_journal_names_but_that_never_landed_are_skipped(tmp_path: Path) -> None:
    odb = make_odb(tmp_path)
    odb.journal.mkdir(parents=True)
    (odb.journal / name(OTHER_BOOT, 1)).write_text(hash_bytes(b"never renamed") + "\nnot-an-oid\n")
    assert odb.recover() == journal.Recovered(0, 0, ())
    assert list(odb.journal.iterdir()) == []


def test_this_boots_journal_settles_once_old_and_its_writer_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "_quiet", lambda: False)  # much waits to be written back
    odb = make_odb(tmp_path)
    store(odb, b"x")
    (mine,) = odb.journal.iterdir()
    dead = odb.journal / name(pid=dead_pid())
    mine.rename(dead)
    later = time.time() + journal.SETTLE_S + 1
    assert journal.recover(odb, settle=True).settled == 0  # too young
    assert journal.recover(odb, now=later).settled == 0  # a reader: not now
    assert journal.recover(odb, settle=True, now=later).settled == 1
    assert not dead.exists()


def test_the_next_command_that_writes_settles_old_journals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "_quiet", lambda: False)  # much waits to be written back
    store(make_odb(tmp_path), b"x")
    odb = make_odb(tmp_path)
    (mine,) = odb.journal.iterdir()
    dead = odb.journal / name(pid=dead_pid())
    mine.rename(dead)
    old = time.time() - journal.SETTLE_S - 1
    os.utime(dead, (old, old))
    odb.recover()  # a command that only reads leaves it then (no syncfs)
    assert dead.exists()
    store(odb, b"y")  # one that writes objects settles it first
    assert not dead.exists() and len(list(odb.journal.iterdir())) == 1


def test_a_live_writers_journal_is_left_alone(tmp_path: Path) -> None:
    odb = make_odb(tmp_path)
    store(odb, b"x")
    later = time.time() + journal.SETTLE_S + 1
    assert journal.recover(odb, settle=True, now=later).settled == 0
    assert len(list(odb.journal.iterdir())) == 1  # this process is its writer, still running


def test_without_a_boot_id_objects_are_synced_before_they_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "boot_id", lambda: None)
    odb = make_odb(tmp_path)
    assert odb.sync == "always" and odb.durable


def test_the_next_command_after_a_crash_finds_what_did_not_land(project: Project) -> None:
    data = project.root / "data"
    data.mkdir()
    for i in range(5):
        (data / f"f{i}.txt").write_text(f"file {i}\n")
    project.ok("add", "data")
    cache = project.root / ".conveyor/cache"
    for entry in (cache / "journal").iterdir():
        host, _boot, pid, token = entry.name.split(".")
        entry.rename(entry.with_name(f"{host}.{OTHER_BOOT}.{pid}.{token}"))
    victim = next((cache / "objects").glob("*/*"))
    victim.chmod(0o644)
    victim.write_bytes(b"")
    report = json.loads(project.ok("status", "--json"))["data"]
    assert report[0]["not_in_cache"] == 1
    assert (cache / "quarantine" / (victim.parent.name + victim.name)).exists()
    project.ok("add", "data")  # the workspace still has the bytes: stored again
    report = json.loads(project.ok("status", "--json"))["data"]
    assert report[0]["state"] == "clean" and report[0]["not_in_cache"] == 0


def test_a_journal_whose_writer_died_mid_write_is_removed(tmp_path: Path) -> None:
    odb = make_odb(tmp_path)
    odb.journal.mkdir(parents=True)
    dead = odb.journal / f".{name()}.tmp"
    live = odb.journal / f".{name(pid=1)}.tmp"
    dead.write_text("half")
    live.write_text("being written")
    old = time.time() - journal.SETTLE_S - 1
    os.utime(dead, (old, old))
    odb.recover()
    assert not dead.exists() and live.exists()


def test_a_journal_is_never_written_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal.os, "urandom", lambda n: b"\0" * n)
    first = journal.record(tmp_path / "j", ["a" * 64])
    monkeypatch.setattr(journal, "_counter", iter(range(10**6)))  # the same token again first
    second = journal.record(tmp_path / "j", ["b" * 64])
    assert first != second
    assert first.read_text() == "a" * 64 and second.read_text() == "b" * 64
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == sorted([first.name, second.name])


def test_another_machines_journal_is_left_to_it_until_a_day_old(tmp_path: Path) -> None:
    odb = make_odb(tmp_path)
    (oid,) = store(odb, b"written by the other machine")
    for entry in odb.journal.iterdir():
        entry.unlink()
    foreign = odb.journal / name(OTHER_BOOT, host="f" * 12)
    foreign.write_text(oid)
    odb.recover()
    assert foreign.exists()  # it may still be naming objects there
    later = time.time() + journal.FOREIGN_S + 1
    result = journal.recover(odb, now=later)
    assert result.checked == 1 and result.corrupt == () and not foreign.exists()


@pytest.mark.parametrize("quiet", [True, False])
def test_a_reader_settles_only_while_little_waits_to_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: bool
) -> None:
    odb = make_odb(tmp_path)
    store(odb, b"x")
    (mine,) = odb.journal.iterdir()
    dead = odb.journal / name(pid=dead_pid())
    mine.rename(dead)
    monkeypatch.setattr(journal, "_quiet", lambda: quiet)
    later = time.time() + journal.SETTLE_S + 1
    assert journal.recover(odb, now=later).settled == int(quiet)
    assert dead.exists() is not quiet


def test_an_unreadable_object_after_a_crash_is_not_trusted(tmp_path: Path) -> None:
    odb = make_odb(tmp_path)
    (oid,) = store(odb, b"data")
    for entry in odb.journal.iterdir():
        entry.rename(odb.journal / name(OTHER_BOOT))
    path = odb.path(oid)
    path.unlink()
    path.mkdir()  # reading it fails with an error other than "missing"
    result = odb.recover()
    assert result.corrupt == (oid,) and not odb.exists(oid)


def test_a_journal_that_cannot_be_written_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from conveyor.foundation.errors import DataError

    def full(folder: Path, oids: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal, "record", full)
    odb = make_odb(tmp_path)
    with pytest.raises(DataError, match="No space left") as info:
        store(odb, b"x")
    assert "free some disk space" in (info.value.hint or "")
    assert not odb.exists(hash_bytes(b"x"))
