"""What the benchmark scripts share: errors, warnings, removal and finding executables."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """A failure that ends the benchmark with a message."""


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def find_exe(raw: str, what: str, hint: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_absolute():
        tries = [Path.cwd() / path, REPO_ROOT / path]
        path = next((p for p in tries if p.exists()), tries[0])
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise BenchError(f"{what} executable not found: {path}\n  {hint}")
    return path.absolute()  # not resolve(): a venv's entry points must stay where they are


def run_checked(
    cmd: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run a command; a failure ends the benchmark with its output."""
    try:
        return subprocess.run(
            cmd, cwd=cwd, env=dict(env), check=True, capture_output=True, text=True
        )
    except subprocess.CalledProcessError as exc:
        raise BenchError(
            f"command failed (exit {exc.returncode}): {shlex.join(cmd)}\n  in {cwd}\n"
            f"--- stderr ---\n{exc.stderr[-3000:]}\n--- stdout ---\n{exc.stdout[-2000:]}"
        ) from exc
    except OSError as exc:
        raise BenchError(f"cannot run {shlex.join(cmd)} in {cwd}: {exc}") from exc


def timed(cmd: Sequence[str], cwd: Path, env: Mapping[str, str]) -> float:
    os.sync()  # flush writes of earlier steps so they are not billed to this one
    start = time.perf_counter()
    run_checked(cmd, cwd, env)
    return time.perf_counter() - start


def main(run: Callable[[Any], None], parse_args: Callable[[Any], Any], argv: Any) -> int:
    """A benchmark script's entry point: a BenchError ends it with its message, exit 1."""
    try:
        run(parse_args(argv))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
