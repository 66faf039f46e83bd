"""`make demo` must keep working: run the demo end to end, as a newcomer would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_every_step() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "demo finished: every step passed" in out
    assert "clean     data/raw" in out  # after the cache and workspace were wiped and pulled
    assert "570 data/raw/cells.csv" in out and "770 data/raw/cells.csv" in out  # time travel
    # the pipeline on a local Ray: the stages ran as tasks, the lock written by the driver
    assert "--executor ray --force" in out
    # a teammate's clone pulls the run-cache: the combination run elsewhere is restored
    assert "pulled 5 run-cache entries" in out or "run-cache entries from store" in out
    assert "train restored from run-cache (param train.C changed 1.0 -> 0.05)" in out
    # progressive delivery: a canary promoted, a failed-gates version refused, a damaged one
    # aborted by its analysis, a rollback, an A/B test's verdict
    assert "production: promoted" in out
    assert "its gates did not pass" in out
    assert "production: aborted" in out and "error_rate: fail" in out
    assert "classifier version 1 serves all traffic" in out
    assert "verdict " in out and "experiment: " in out
    # monitoring closes the loop: the world changes, the quality alert retrains, the canary of
    # the retrained version is promoted, and the report is written
    assert "alert quality-drop firing" in out and "(retrain started)" in out
    assert "retrain production: retrained; rolling out models:/classifier/" in out
    assert "monitor-production.html" in out
    # past one machine: the manifests, the image's context, the orchestrators' pipelines
    assert "Rollout classifier-production" in out and "/deployments/production" in out
    # no cluster here: kubectl is missing, or finds no cluster; either way nothing is applied
    assert "$ conveyor k8s apply production" in out and "(exit code 1, as expected)" in out
    assert "wrote the build context of models:/classifier/" in out
    assert "HEALTHCHECK" in out and "USER 10001" in out
    assert "3 tasks, exchanging through remote 'store'" in out
