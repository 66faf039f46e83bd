from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.foundation.errors import LockError
from conveyor.foundation.lock import ProjectLock


def test_second_holder_times_out_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with ProjectLock(path, command="conveyor add data"), pytest.raises(LockError) as info:
        ProjectLock(path, timeout=0.2).acquire()
    assert f"pid {os.getpid()}: conveyor add data" in info.value.message
    assert info.value.exit_code == 3


def test_released_lock_can_be_taken(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with ProjectLock(path):
        pass
    with ProjectLock(path, timeout=0.1):
        pass
