"""What the benchmark scripts share: errors, warnings, removal and finding executables."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

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
