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
    boot, pid, _n = entry.name.split(".")
    assert boot == journal.boot_id() and int(pid) == os.getpid()
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
        entry.rename(odb.journal / f"{OTHER_BOOT}.{os.getpid()}.0")
    path = odb.path(bad)
    path.chmod(0o644)
    path.write_bytes(b"\0" * 7)  # what a crash can leave: a named file without its bytes
    before = odb.generation()
    result = odb.recover(tmp_path / "quarantine")
    assert result.checked == 2 and result.corrupt == (bad,)
    assert odb.exists(good) and not odb.exists(bad)
    assert (tmp_path / "quarantine" / bad).read_bytes() == b"\0" * 7
    assert list(odb.journal.iterdir()) == []
    assert odb.generation() != before  # trees once complete must be looked at again


def test_objects_a_journal_names_but_that_never_landed_are_skipped(tmp_path: Path) -> None:
    odb = make_odb(tmp_path)
    odb.journal.mkdir(parents=True)
    (odb.journal / f"{OTHER_BOOT}.1.0").write_text(hash_bytes(b"never renamed") + "\nnot-an-oid\n")
    assert odb.recover(tmp_path / "q") == journal.Recovered(0, 0, ())
    assert list(odb.journal.iterdir()) == []


def test_this_boots_journal_settles_once_old_and_its_writer_gone(tmp_path: Path) -> None:
    odb = make_odb(tmp_path)
    store(odb, b"x")
    (mine,) = odb.journal.iterdir()
    dead = odb.journal / f"{journal.boot_id()}.{dead_pid()}.0"
    mine.rename(dead)
    later = time.time() + journal.SETTLE_S + 1
    q = tmp_path / "q"
    assert journal.recover(odb, odb.journal, q, settle=True).settled == 0  # too young
    assert journal.recover(odb, odb.journal, q, now=later).settled == 0  # a reader never does
    assert journal.recover(odb, odb.journal, q, settle=True, now=later).settled == 1
    assert not dead.exists()


def test_the_next_command_that_writes_settles_old_journals(tmp_path: Path) -> None:
    store(make_odb(tmp_path), b"x")
    odb = make_odb(tmp_path)
    (mine,) = odb.journal.iterdir()
    dead = odb.journal / f"{journal.boot_id()}.{dead_pid()}.0"
    mine.rename(dead)
    old = time.time() - journal.SETTLE_S - 1
    os.utime(dead, (old, old))
    odb.recover(tmp_path / "q")  # a command that only reads leaves it (no syncfs)
    assert dead.exists()
    store(odb, b"y")  # one that writes objects settles it first
    assert not dead.exists() and len(list(odb.journal.iterdir())) == 1


def test_a_live_writers_journal_is_left_alone(tmp_path: Path) -> None:
    odb = make_odb(tmp_path)
    store(odb, b"x")
    later = time.time() + journal.SETTLE_S + 1
    assert journal.recover(odb, odb.journal, tmp_path / "q", settle=True, now=later).settled == 0
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
        entry.rename(entry.with_name(f"{OTHER_BOOT}.{entry.name.split('.', 1)[1]}"))
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
    dead = odb.journal / f".{journal.boot_id()}.{dead_pid()}.0.{dead_pid()}.tmp"
    live = odb.journal / f".{journal.boot_id()}.{os.getpid()}.0.{os.getpid()}.tmp"
    dead.write_text("half")
    live.write_text("being written")
    odb.recover(tmp_path / "q")
    assert not dead.exists() and live.exists()
