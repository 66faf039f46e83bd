"""Orchestrators for the export tests: Airflow and KFP, each in a venv of its own.

Both pin packages the project's own environment has newer versions of (Airflow: fastapi; kfp:
protobuf, requests), so they are never installed beside conveyor: each gets a venv, built once
per machine under the temp folder (Airflow with its Kubernetes provider ~45 s, kfp ~15 s from
the package index) and reused by later runs. A venv that cannot be built fails the test with
pip's reason: it never skips.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import conveyor

# The Kubernetes provider too: the DAG's pods are KubernetesPodOperators (parsed, never started).
AIRFLOW = ("apache-airflow==3.3.2", "apache-airflow-providers-cncf-kubernetes==10.25.0")
KFP = ("kfp==2.17.3",)


def tool_venv(name: str, requirements: tuple[str, ...]) -> Path:
    """The python of a venv holding ``requirements``, built on first use (under a file lock, so
    concurrent test runs build it once)."""
    requirement = " ".join(requirements)
    tag = hashlib.sha256(f"{requirement} {sys.version}".encode()).hexdigest()[:12]
    base = Path(tempfile.gettempdir()) / "conveyor-test-venvs"
    folder = base / f"{name}-{tag}"
    python = folder / "bin" / "python"
    done = folder / ".installed"
    if done.exists():
        return python
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return python
        shutil.rmtree(folder, ignore_errors=True)
        env = clean_env()
        steps = [
            [sys.executable, "-m", "venv", str(folder)],
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *requirements,
            ],
        ]
        for step in steps:
            proc = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                shutil.rmtree(folder, ignore_errors=True)
                pytest.fail(
                    f"could not build a venv with {requirement}: {' '.join(step)} exited "
                    f"{proc.returncode}\n{proc.stderr[-3000:]}",
                    pytrace=False,
                )
        done.touch()
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
