from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from conveyor.data import hashing


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
