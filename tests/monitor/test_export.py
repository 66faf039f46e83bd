"""The monitor's alerts as Prometheus rules: the mappings of when: and for: checked with plain
values, and the generated rule file checked and unit-tested by the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.foundation.yamlio import load
from conveyor.monitor import config, export
from conveyor.monitor.config import Monitor, Window
from conveyor.monitor.rules import Rule, parse_for, parse_when

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus; .ci/run does)"
)

CONFIG = """\
monitor:
  production:
    reference: data/train.csv
    features: [age, size]
    window: {every: 1h}
    quality: {metric: accuracy, min: 0.9}
    estimate: true
    alerts:
      - {name: drift, when: "drift.share > 0.5", for: 2 windows}
      - {name: age-drift, when: "drift.age >= 0.3", for: 1 window, severity: info}
      - {name: size-missing, when: "missing.size > 0.2"}
      - {name: missing, when: "missing.share > 0.1", for: 90s}
      - {name: quality-drop, when: "quality.accuracy < 0.9", severity: critical,
         action: retrain}
      - {name: quality-guess, when: "estimate.accuracy <= 0.85", for: 3 windows}
      - {name: schema, when: "violations.share > 0.01", for: 5m}
      - {name: predictions, when: "prediction_drift > 0.2"}
      - {name: few-rows, when: "rows < 1234567"}
      - {name: many-drifted, when: "drift.count >= 2"}
      - {name: errors, when: "error_rate > 0.05", for: 2m, severity: critical,
         action: rollback}
      - {name: slow, when: "latency_p99 > 0.5", for: 1m}
      - {name: slow-median, when: "latency_p50 >= 0.1"}
      - {name: traffic-drop, when: "requests_per_second < 1", for: 5m}
      - {name: '"odd" {{name}}', when: "requests_per_second > 2.5"}
  staging:
    reference: data/train.csv
    window: {rows: 1000}
    alerts:
      - {name: drift, when: "drift.share > 0.5", for: 3 windows}
      - {name: tiny, when: "drift.share > 1e-05"}
"""


def monitors() -> dict[str, Monitor]:
    doc = load(CONFIG, "conveyor.yaml")
    return config.parse(doc.data["monitor"], doc)


def rule(when: str, hold: str = "0s", name: str = "a") -> Rule:
    return Rule(name, parse_when(when), parse_for(hold))


@pytest.mark.parametrize(
    ("when", "promql"),
    [
        ("drift.share > 0.5", 'conveyor_monitor_drift_share{env="p"} > 0.5'),
        ("drift.count >= 3", 'conveyor_monitor_drift_count{env="p"} >= 3'),
        ("drift.age > 0.1", 'conveyor_monitor_feature_drift{env="p",feature="age"} > 0.1'),
        ("missing.share > 0.1", 'conveyor_monitor_missing_share{env="p",feature=""} > 0.1'),
        ("missing.age != 0", 'conveyor_monitor_missing_share{env="p",feature="age"} != 0'),
        ("quality.accuracy < 0.9", 'conveyor_monitor_quality{env="p",metric="accuracy"} < 0.9'),
        ("estimate.error_rate > 0.2",
         'conveyor_monitor_estimate{env="p",metric="error_rate"} > 0.2'),
        ("violations.share > 0.01", 'conveyor_monitor_violations_share{env="p"} > 0.01'),
        ("prediction_drift > 0.2", 'conveyor_monitor_prediction_drift{env="p"} > 0.2'),
        ("rows < 100", 'conveyor_monitor_window_rows{env="p"} < 100'),
        ("error_rate > 0.05", 'conveyor:error_rate:ratio_rate5m{env="p"} > 0.05'),
        ("latency_p50 > 0.1", 'conveyor:latency_p50:seconds5m{env="p"} > 0.1'),
        ("latency_p99 > 0.5", 'conveyor:latency_p99:seconds5m{env="p"} > 0.5'),
        ("requests_per_second < 1", 'conveyor:requests:rate5m{env="p"} < 1'),
        ("drift.share > 1e-05", 'conveyor_monitor_drift_share{env="p"} > 1e-05'),
    ],
)  # fmt: skip
def test_when_maps_to_promql(when: str, promql: str) -> None:
    assert export.when(parse_when(when), "p") == promql


def test_label_values_are_quoted() -> None:
    odd = export.Selector("conveyor_monitor_feature_drift", (("feature", 'a"b\\c\n'),))
    assert odd.promql('e"') == 'conveyor_monitor_feature_drift{env="e\\"",feature="a\\"b\\\\c\\n"}'


def test_for_maps_to_seconds_or_to_the_monitors_verdict() -> None:
    hourly, rows = Window(every=3600.0), Window(every=None, rows=1000)
    assert export.hold(rule("rows < 1", "5m"), hourly) == (300.0, False)
    assert export.hold(rule("rows < 1", "1 window"), hourly) == (0.0, False)
    assert export.hold(rule("rows < 1", "3 windows"), hourly) == (7200.0, False)
    assert export.hold(rule("rows < 1", "1 window"), rows) == (0.0, False)
    assert export.hold(rule("rows < 1", "3 windows"), rows) == (0.0, True)
    assert [export.prom_duration(s) for s in (0, 0.25, 90, 3600, 93784.5)] == [
        "0s", "250ms", "1m30s", "1h", "1d2h3m4s500ms",
    ]  # fmt: skip


def test_go_float_prints_like_prometheus_templates() -> None:
    cases = {0.0: "0", 1.0: "1", -2.5: "-2.5", 0.1: "0.1", 1e-4: "0.0001", 1e-5: "1e-05",
             123456.0: "123456", 1e6: "1e+06", 617284.0: "617284", 0.000495: "0.000495",
             2.5e-7: "2.5e-07", 1.5e300: "1.5e+300"}  # fmt: skip
    assert {v: export.go_float(v) for v in cases} == cases


def test_the_rule_file() -> None:
    made = export.prometheus_rules(monitors(), {"production": "clf"})
    recording, production, staging = made["groups"]
    assert [r["record"] for r in recording["rules"]] == list(export.RECORDED)
    alerts = {r["alert"]: r for r in production["rules"]}
    drift = alerts["drift"]
    assert drift == {
        "alert": "drift",
        "expr": 'conveyor_monitor_drift_share{env="production"} > 0.5',
        "for": "1h",  # 2 windows of 1h: the second window's gauge comes an hour after the first
        "labels": {"severity": "warning", "env": "production", "model": "clf"},
        "annotations": {
            "summary": "production: drift.share > 0.5 (drift)",
            "description": "drift.share is {{ $value }} for {{ $labels.model }} version "
            "{{ $labels.version }} ({{ $labels.role }}) in production; drift fires when "
            "drift.share > 0.5 holds for 2 windows.",
        },
    }
    assert "for" not in alerts["age-drift"] and alerts["quality-guess"]["for"] == "2h"
    assert alerts["quality-drop"]["annotations"]["action"] == "conveyor's monitor runs retrain"
    # User text never reads as a template
    assert "{{name}}" not in alerts['"odd" {{name}}']["annotations"]["summary"]
    rows = {r["alert"]: r for r in staging["rules"]}
    assert rows["drift"]["expr"] == (
        'conveyor_monitor_drift_share{env="staging"} > 0.5 and on (env, model) '
        '(conveyor_monitor_alert_firing{env="staging",alertname="drift"} == 1)'
    )
    assert "for" not in rows["drift"] and "model" not in rows["drift"]["labels"]


def test_the_latency_buckets_are_the_servers() -> None:
    from conveyor.serve.metrics import LATENCY_BUCKETS

    assert export.LATENCY_BUCKETS == LATENCY_BUCKETS


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_promtool_checks_and_tests_the_generated_rules(tmp_path: Path) -> None:
    made = export.write_prometheus(tmp_path, monitors(), {"production": "clf"})
    assert [p.name for p in made] == ["conveyor-rules.yml", "conveyor-rules.test.yml"]
    checked = promtool("check", "rules", "conveyor-rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 23 rules found" in checked.stdout
    tested = promtool("test", "rules", "conveyor-rules.test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = yaml.safe_load((tmp_path / "conveyor-rules.test.yml").read_text())["tests"]
    names = [t["name"] for t in tests]
    # Every alert fires in one test and stays quiet in another; the staging alert over 3 windows
    # of rows also waits for the monitor's verdict.
    for env, alerts in (("production", 15), ("staging", 2)):
        assert sum(n.startswith(f"{env}: ") and " fires after " in n for n in names) == alerts
        assert sum(n.startswith(f"{env}: ") and " stays quiet " in n for n in names) == alerts
    assert "staging: drift waits for the monitor's 3 windows" in names
    # A firing test checks the step before `for:` ends too.
    (drift,) = [t for t in tests if t["name"] == "production: drift fires after 1h"]
    times = [(c["eval_time"], bool(c["exp_alerts"])) for c in drift["alert_rule_test"]]
    assert times == [("59m", False), ("1h", True)]


@needs_promtool
@pytest.mark.parametrize(
    ("wrong", "right"),
    [
        ("for: 1h", "for: 2h"),  # the drift alert waits a window too long
        ("histogram_quantile(0.99,", "histogram_quantile(0.9,"),
        ("> 0.05", "> 0.5"),
    ],
)
def test_the_unit_tests_catch_a_wrong_rule(tmp_path: Path, wrong: str, right: str) -> None:
    export.write_prometheus(tmp_path, monitors(), {"production": "clf"})
    rules = tmp_path / "conveyor-rules.yml"
    text = rules.read_text()
    assert wrong in text
    rules.write_text(text.replace(wrong, right, 1))
    tested = promtool("test", "rules", "conveyor-rules.test.yml", cwd=tmp_path)
    assert tested.returncode != 0 and "FAILED" in tested.stdout + tested.stderr


def test_an_alert_that_cannot_be_quiet_gets_its_firing_test_only() -> None:
    always = Monitor(env="e", reference="r", alerts=(rule("requests_per_second >= 0"),))
    tests: list[dict[str, Any]] = export.rule_tests({"e": always})["tests"]
    assert [t["name"] for t in tests] == ["e: a fires after 0s"]
