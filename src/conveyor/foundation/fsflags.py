"""A hint to the filesystem about where the inodes of many new files should go.

ext2/3/4 place a new file's inode in the block group of its folder, and a new folder near its
parent, unless the parent is marked as the top of a hierarchy (``chattr +T``, ``FS_TOPDIR_FL``):
the Orlov allocator then puts each new sub-folder in the block group with the fewest folders and
more free inodes and blocks than average. The object cache writes thousands of files at once from
per-thread temp folders; marked this way, those files go to quiet block groups instead of the one
that holds the project (and whatever was deleted there a moment ago: without a journal, ext4 checks
every recently freed inode of a group before it reuses one, which can triple the cost of a create).

Nothing else changes: where the flag does not exist (other filesystems, other systems) the call
does nothing.
"""

from __future__ import annotations

import os
from array import array
from pathlib import Path

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


def spread_children(folder: Path | str) -> bool:
    """Mark ``folder`` so that its new sub-folders are spread over the disk; True if it is."""
    import sys

    if not sys.platform.startswith("linux"):  # the ioctl numbers below are Linux's
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not a POSIX system
        return False
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        flags = array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        if flags[0] & FS_TOPDIR_FL:
            return True
        flags[0] |= FS_TOPDIR_FL
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags, True)
        return True
    except OSError:  # a filesystem without inode flags (tmpfs, xfs without them, overlayfs)
        return False
    finally:
        os.close(fd)
