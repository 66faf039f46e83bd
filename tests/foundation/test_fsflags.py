"""The top-of-hierarchy hint: set where the filesystem has it, a no-op elsewhere."""

from __future__ import annotations

import fcntl
import os
from array import array
from pathlib import Path

import pytest

from conveyor.foundation import fsflags


def flags_of(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = array("i", [0])
        fcntl.ioctl(fd, fsflags.FS_IOC_GETFLAGS, buf, True)
        return buf[0]
    finally:
        os.close(fd)


def test_a_folder_is_marked_where_the_filesystem_can(tmp_path: Path) -> None:
    folder = tmp_path / "tmp"
    folder.mkdir()
    if not fsflags.spread_children(folder):
        pytest.skip("this filesystem keeps no inode flags")
    else:
        assert flags_of(folder) & fsflags.FS_TOPDIR_FL
        assert fsflags.spread_children(folder)  # marking again is harmless
    (folder / "sub").mkdir()  # and folders are made as before
    assert (folder / "sub").is_dir()


def test_what_is_not_a_folder_is_left_alone(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    assert not fsflags.spread_children(file)
    assert not fsflags.spread_children(tmp_path / "missing")
