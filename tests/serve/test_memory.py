"""The server's malloc tuning: on glibc it takes; elsewhere it is a no-op that says so."""

from __future__ import annotations

import platform

from conveyor.serve import memory


def test_freed_memory_is_kept_on_glibc() -> None:
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert memory.keep_freed_memory() is glibc
    assert memory.keep_freed_memory() is glibc  # again: the same settings, no harm
