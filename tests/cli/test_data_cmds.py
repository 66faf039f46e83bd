"""`conveyor checkout` of pipeline outs: what the lock records, restored through the real CLI."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Project

PIPELINE = "stages:\n  s:\n    cmd: echo made > out.txt\n    outs: [out.txt]\n"


@pytest.mark.parametrize("bad", [".nan", "12", "'../../etc/passwd'"])
def test_a_lock_out_without_a_valid_hash_is_a_config_error(project: Project, bad: str) -> None:
    project.write("conveyor.yaml", PIPELINE)
    project.ok("run")
    lock = project.root / "conveyor.lock"
    text = re.sub(r"hash: [0-9a-f]{64}", f"hash: {bad}", lock.read_text())
    lock.write_text(text)
    (project.root / "out.txt").unlink()
    result = project.run("checkout")
    assert result.code == 2 and "Traceback" not in result.err
    assert "conveyor.lock is malformed (conveyor.lock:4: stage 's': 'out.txt' has" in result.err
    assert not (project.root / "out.txt").exists()


def test_checkout_without_a_lock_does_not_read_conveyor_yaml(project: Project) -> None:
    project.write("data.txt", "x\n")
    project.ok("add", "data.txt")
    project.write("conveyor.yaml", "stages: [not, a, mapping]\n")  # broken, and never run
    (project.root / "data.txt").unlink()
    assert "data.txt: 1 added" in project.ok("checkout")
