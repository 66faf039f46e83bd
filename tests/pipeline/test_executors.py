"""The ``executor:`` section and ``--executor``: which executor runs the stages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.foundation import project
from conveyor.foundation.errors import ConfigError
from conveyor.pipeline.executors import ExecutorSpec, choice, resolve
from tests.conftest import Project


def write(root: Path, text: str) -> None:
    (root / "conveyor.yaml").write_text(text)


def test_the_default_is_the_local_pool(tmp_path: Path) -> None:
    assert resolve(tmp_path) == ExecutorSpec("local")
    write(tmp_path, "stages: {}\n")
    assert resolve(tmp_path) == ExecutorSpec("local")


def test_one_word_or_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, "executor: ray\n")
    assert resolve(tmp_path) == ExecutorSpec("ray")
    write(tmp_path, "executor: ray://head:10001\n")
    assert resolve(tmp_path) == ExecutorSpec("ray", "ray://head:10001")
    write(tmp_path, "executor:\n  type: ray\n  remote: store\n  max_retries: 1\n")
    assert resolve(tmp_path) == ExecutorSpec("ray", "", "store", 1)


def test_the_command_line_overrides_the_type_and_address_only(tmp_path: Path) -> None:
    write(tmp_path, "executor:\n  type: local\n  remote: store\n  max_retries: 5\n")
    assert resolve(tmp_path, "ray://h:1") == ExecutorSpec("ray", "ray://h:1", "store", 5)
    assert resolve(tmp_path, "local").type == "local"


@pytest.mark.parametrize(
    ("text", "says", "hint"),
    [
        ("executor: rey\n", "conveyor.yaml:1: executor: 'rey' is not an executor", "'ray'"),
        (
            "executor:\n  type: ray\n  adress: x\n",
            "conveyor.yaml:3: executor: unknown key 'adress'",
            "did you mean 'address'?",
        ),
        ("executor:\n  type: spark\n", "conveyor.yaml:2: executor: type: one of", None),
        ("executor:\n  max_retries: -1\n", "conveyor.yaml:2: executor: max_retries:", None),
        (
            "executor:\n  address: head:10001\n",
            "conveyor.yaml:2: executor: address 'head:10001'",
            "ray://HOST:10001",
        ),
        ("executor: [ray]\n", "conveyor.yaml:1: 'executor' is local, ray", None),
    ],
)
def test_mistakes_name_the_line_the_key_and_the_nearest(
    tmp_path: Path, text: str, says: str, hint: str | None
) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        resolve(tmp_path)
    assert info.value.message.startswith(says), info.value.message
    if hint:
        assert hint in (info.value.hint or "")


def test_a_mistyped_command_line_choice() -> None:
    with pytest.raises(ConfigError, match="--executor: 'lcoal' is not an executor") as info:
        choice("lcoal", "--executor")
    assert info.value.hint == "did you mean 'local'?"


def test_executor_is_a_section_every_process_knows() -> None:
    assert "executor" in project.names()


def test_missing_ray_says_which_extra_to_install(project: Project) -> None:
    project.ok("remote", "add", "-d", "store", str(project.root.parent / "store"))
    project.write("conveyor.yaml", "stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n")
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if it were not installed
        "from conveyor.cli.main import run\n"
        "sys.argv = ['conveyor', 'run', '--executor', 'ray']\n"
        "run()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=project.root, capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stderr
    assert "the Ray executor needs Ray, which is not installed" in proc.stdout + proc.stderr
    assert "pip install 'conveyor[ray]'" in proc.stdout + proc.stderr
