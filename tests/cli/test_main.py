from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor.cli.main import main
from tests.conftest import Project


def test_init_refuses_twice_unless_forced(project: Project) -> None:
    result = project.run("init")
    assert result.code == 1 and "already exists" in result.err and "--force" in result.err
    project.write("f", "1")
    project.ok("add", "f")
    assert "Re-initialised" in project.ok("init", "--force")
    assert "clean" in project.ok("status")  # the cache survived


def test_init_writes_gitignore_and_skeleton(project: Project) -> None:
    ignore = (project.root / ".conveyor/.gitignore").read_text()
    assert "/cache/" in ignore and "/state.db*" in ignore
    assert "stages:" in (project.root / "conveyor.yaml").read_text()
    status = project.git("status", "--porcelain", "--untracked-files=all")
    assert ".conveyor/config" in status and "cache" not in status


def test_init_outside_git_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert "not in a git repository" in capsys.readouterr().out


def test_outside_a_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "not inside a conveyor project" in err and "conveyor init" in err


def test_debug_shows_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--debug", "status"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_config_command(project: Project) -> None:
    project.ok("config", "cache.type", "hardlink,copy")
    assert project.ok("config", "cache.type").strip() == "hardlink,copy"
    bad = project.run("config", "cache.tpye", "copy")
    assert bad.code == 2 and "did you mean 'cache.type'?" in bad.err
    project.ok("config", "--unset", "cache.type")
    assert project.ok("config", "cache.type").strip() == "reflink,copy"


def test_remote_commands(project: Project, tmp_path: Path) -> None:
    store = tmp_path / "store"
    out = project.ok("remote", "add", "store", str(store), "--default")
    assert "(default)" in out
    assert f"store\t{store} (default)" in project.ok("remote", "list")
    again = project.run("remote", "add", "store", "/elsewhere")
    assert again.code == 2 and "already exists" in again.err
    rel = project.ok("remote", "add", "near", "../near")
    assert "near -> ../near" in rel
    project.ok("remote", "remove", "store")
    assert "store" not in project.ok("remote", "list").split()
    assert project.run("remote", "remove", "nope").code == 2


def test_usage_errors_exit_2(project: Project) -> None:
    result = project.run("add")
    assert result.code == 2 and "arguments are required: PATH" in result.err


def test_console_script_runs(project: Project) -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "conveyor"
    proc = subprocess.run([exe, "status"], cwd=project.root, capture_output=True, text=True)
    assert proc.returncode == 0 and "No tracked data" in proc.stdout
    assert os.access(exe, os.X_OK)


def test_remote_add_force_drops_stale_options(project: Project) -> None:
    project.ok("remote", "add", "s", "s3://bucket/path")
    project.ok("config", "remote.s.endpoint_url", "http://127.0.0.1:9")
    project.ok("remote", "add", "--force", "s", "/elsewhere")
    assert "remote.s.endpoint_url" not in project.ok("config", "--list")
