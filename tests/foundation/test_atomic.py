"""Whole writes: write_all delivers every byte, through a pipe as into a file."""

from __future__ import annotations

import os
import threading

from conveyor.foundation import atomic


def test_write_all_delivers_every_byte_through_a_pipe() -> None:
    data = os.urandom(1 << 20)  # far more than a pipe's buffer holds at once
    read_end, write_end = os.pipe()
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(read_end, 1 << 16):
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        atomic.write_all(write_end, data)
    finally:
        os.close(write_end)
        reader.join()
        os.close(read_end)
    assert bytes(got) == data
