from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from conveyor.data import hashing
from conveyor.foundation.errors import DataError


def test_hash_bytes_is_blake3_hex() -> None:
    # The BLAKE3 test vector of the empty input.
    assert hashing.hash_bytes(b"") == (
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )
    assert hashing.is_oid(hashing.hash_bytes(b"x"))
    assert not hashing.is_oid("AF13")


@pytest.mark.parametrize("size", [0, 1, 100_000, hashing.SMALL + 12345])
def test_hash_file_matches_bytes(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert hashing.hash_file(path) == blake3.blake3(data).hexdigest()


def test_copy_and_hash_copies_exactly(tmp_path: Path) -> None:
    data = os.urandom(hashing.SMALL * 3 + 7)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT)
    try:
        oid = hashing.copy_and_hash(src, fd, len(data), durable=True)
    finally:
        os.close(fd)
    assert oid == blake3.blake3(data).hexdigest()
    assert dst.read_bytes() == data


@pytest.mark.parametrize("direct", [True, False])
def test_both_copies_hash_what_they_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    monkeypatch.setattr(hashing, "_DIRECT_CHUNK", 1 << 20)  # several chunks, a ragged tail
    if not direct:
        monkeypatch.setattr(hashing, "_direct", lambda fd, on=True: False)
    data = os.urandom((5 << 20) + 1234)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        oid = hashing.copy_and_hash(src, fd, len(data), durable=False)
    finally:
        os.close(fd)
    assert oid == blake3.blake3(data).hexdigest()
    assert dst.read_bytes() == data and dst.stat().st_size == len(data)


def test_a_source_that_changed_size_is_refused(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(hashing.SMALL + 10))
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(DataError, match="changed while it was being stored"):
            hashing.copy_and_hash(src, fd, hashing.SMALL, durable=False)
    finally:
        os.close(fd)


def test_an_oid_with_a_trailing_newline_is_no_oid() -> None:
    oid = "ab" * 32
    assert hashing.is_oid(oid)
    assert not hashing.is_oid(oid + "\n") and not hashing.is_oid(oid.upper())


def test_every_store_files_an_object_under_its_first_two_hex_digits() -> None:
    oid = hashing.hash_bytes(b"x")
    assert hashing.sharded(oid) == (oid[:2], oid[2:])
    assert hashing.object_path(oid) == f"{oid[:2]}/{oid[2:]}"
    assert hashing.oid_at(*hashing.sharded(oid)) == oid
    assert hashing.is_shard(oid[:2]) and not hashing.is_shard(".tmp")
    # Temp files beside objects, and a right name in the wrong folder, are not objects.
    assert hashing.oid_at(oid[:2], oid[2:] + ".1234.tmp") is None
    assert hashing.oid_at(oid[:3], oid[3:]) is None
