"""Shared fixtures: a fresh project in a temp folder, and the CLI run in-process or as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.cli.main import main

GIT_ENV = {
    "GIT_AUTHOR_NAME": "conveyor tests",
    "GIT_AUTHOR_EMAIL": "tests@conveyor.invalid",
    "GIT_COMMITTER_NAME": "conveyor tests",
    "GIT_COMMITTER_EMAIL": "tests@conveyor.invalid",
}


@dataclass
class Result:
    code: int
    out: str
    err: str


class Project:
    """A conveyor project in a temp folder, driven through the real CLI."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self._capsys = capsys

    def run(self, *args: str) -> Result:
        """Run ``conveyor ARGS`` in-process (fast) from the project's root."""
        self._capsys.readouterr()
        old = os.getcwd()
        os.chdir(self.root)
        try:
            code = main(list(args))
        finally:
            os.chdir(old)
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.code == 0, f"conveyor {' '.join(args)} -> {result.code}\n{result.err}"
        return result.out

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        proc = subprocess.run(
            ["git", *args], cwd=self.root, env=env, capture_output=True, text=True, check=True
        )
        return proc.stdout

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        # Older than the memo's racy window, as files that were not just written are.
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
        return path


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Project]:
    root = tmp_path / "proj"
    root.mkdir()
    proj = Project(root, capsys)
    proj.git("init", "-q", "-b", "main")
    proj.ok("init")
    yield proj


def conveyor_process(*args: str, cwd: Path, **kw: object) -> subprocess.Popen[bytes]:
    """Start ``conveyor`` as a real process (for kill and concurrency tests)."""
    code = "import sys; from conveyor.cli.main import run; sys.argv[0] = 'conveyor'; run()"
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", code, *args], cwd=cwd, **kw
    )
