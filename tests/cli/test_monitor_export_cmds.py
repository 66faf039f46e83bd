"""`conveyor monitor export prometheus|grafana ENV --out DIR` in a project with a deploy: and
a monitor: section."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import Project

CONFIG = """\
deploy:
  production:
    model: clf
  staging:
    model: clf
monitor:
  production:
    reference: data/train.csv
    window: {every: 10m}
    alerts:
      - {name: drift, when: "drift.share > 0.5", for: 3 windows, severity: critical}
      - {name: errors, when: "error_rate > 0.05", for: 1m}
"""


def test_prometheus_rules_and_their_tests(project: Project) -> None:
    project.write("conveyor.yaml", CONFIG)
    out = project.ok("monitor", "export", "prometheus", "production", "--out", "monitoring")
    assert "wrote 2 alerts of production to monitoring/conveyor-rules.yml" in out
    assert "promtool test rules monitoring/conveyor-rules.test.yml" in out
    rules = yaml.safe_load((project.root / "monitoring" / "conveyor-rules.yml").read_text())
    (drift, errors) = rules["groups"][1]["rules"]
    assert drift["for"] == "20m" and drift["labels"]["model"] == "clf"
    assert errors["expr"] == 'conveyor:error_rate:ratio_rate5m{env="production"} > 0.05'
    if shutil.which("promtool"):
        tested = subprocess.run(["promtool", "test", "rules", "conveyor-rules.test.yml"],
                                cwd=project.root / "monitoring", capture_output=True, text=True,
                                timeout=60)  # fmt: skip
        assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_grafana_dashboard(project: Project) -> None:
    project.write("conveyor.yaml", CONFIG)
    out = project.ok("monitor", "export", "grafana", "production", "--out", "dash")
    assert "dash/conveyor-dashboard.json" in out
    doc = json.loads((project.root / "dash" / "conveyor-dashboard.json").read_text())
    assert doc["uid"] == "conveyor-production" and doc["panels"]
    # An environment deployed but not monitored still gets its traffic's panels.
    project.ok("monitor", "export", "grafana", "staging", "--out", "dash")


@pytest.mark.parametrize("kind", ["prometheus", "grafana"])
def test_an_unknown_environment_is_named(project: Project, kind: str) -> None:
    project.write("conveyor.yaml", CONFIG)
    failed = project.run("monitor", "export", kind, "prodution")
    assert failed.code != 0
    assert "prodution" in failed.err and "production" in failed.err  # did you mean


def test_staging_is_deployed_but_not_monitored(project: Project) -> None:
    project.write("conveyor.yaml", CONFIG)
    failed = project.run("monitor", "export", "prometheus", "staging")
    assert failed.code != 0 and "not monitored" in failed.err
