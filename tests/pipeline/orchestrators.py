"""Orchestrators for the export tests: Airflow and KFP, each in a venv of its own.

Both pin packages the project's own environment has newer versions of (Airflow: fastapi; kfp:
protobuf, requests), so they are never installed beside conveyor: `make test` builds each in
``.venv-tools/`` (the Makefile pins them), like the project's own venv. A venv missing fails the
test with what to run: it never skips.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

import conveyor

TOOLS = Path(__file__).resolve().parents[2] / ".venv-tools"


def tool_venv(name: str) -> Path:
    """The python of the tool venv ``name`` (airflow, kfp) that `make test` builds."""
    python = TOOLS / name / "bin" / "python"
    if not (TOOLS / name / ".installed").exists():
        pytest.fail(
            f"{TOOLS / name} is not built: `make test` builds it "
            f"(make {TOOLS.name}/{name}/.installed)",
            pytrace=False,
        )
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this venv's Python settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def conveyor_on_path(folder: Path) -> str:
    """A folder holding a ``conveyor`` script that runs this conveyor (this Python, this
    source tree), for commands an orchestrator runs; returns a PATH starting with it."""
    folder.mkdir(parents=True, exist_ok=True)
    src = Path(conveyor.__file__).resolve().parents[1]
    code = "import sys; from conveyor.cli.main import run; sys.argv[0] = 'conveyor'; run()"
    script = folder / "conveyor"
    script.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(str(src))} exec {shlex.quote(sys.executable)} "
        f'-c {shlex.quote(code)} "$@"\n'
    )
    script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
