"""How the server's process keeps memory it freed.

A request of a thousand rows allocates and frees buffers of hundreds of kilobytes (its body,
the text of its numbers, arrays): glibc's malloc serves each of those from pages it maps for
it and unmaps on free, or trims from the top of its heap, so every request faults the same
pages in again and the kernel zeroes them: hundreds of page faults a request, a third of the
server's CPU time for such a request (measured with bench/serving.py). Past
:data:`MMAP_THRESHOLD` bytes memory is still mapped and unmapped; below it, freed memory is
kept (up to :data:`TRIM_THRESHOLD` bytes at the top of the heap) for the next request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

MMAP_THRESHOLD = 8 * 2**20
TRIM_THRESHOLD = 32 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def keep_freed_memory() -> bool:
    """Tune glibc's malloc in this process; False where it is not glibc (nothing to tune)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
