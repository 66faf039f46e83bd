"""The Ray executor on a real two-node local cluster: the cases of ray_cluster_cases.py, run by
a pytest of their own.

A Ray driver leaves gRPC threads in its process even after ``ray.shutdown()``; a later test of
the same process that forks (``conveyor add`` hashes small files in a forked pool) could then
deadlock in the child. So the cases run in a child pytest: their connection dies with it. A
failing case fails this test with the child's report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("ray_cluster_cases.py")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_ray_cluster_cases_pass() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=570,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
