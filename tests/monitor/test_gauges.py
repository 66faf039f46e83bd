"""The monitor's gauges: rendered, parsed back with prometheus_client's parser, written and read
back, and a damaged file never read."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.monitor import gauges as g
from conveyor.monitor.gauges import AlertGauge, FeatureGauges, Gauges, VersionGauges

STABLE = VersionGauges(
    version="3",
    role="stable",
    rows=500,
    window_end=1_700_000_000.0,
    drift_share=0.5,
    drift_count=1,
    features=(
        FeatureGauges("age", drift=0.31, drifted=True, missing=0.0),
        FeatureGauges('we"ird\\name\n', drift=0.01, drifted=False, missing=0.25),
    ),
    missing_share=0.125,
    prediction_drift=0.2,
    violations_share=0.01,
    quality={"accuracy": 0.91},
    quality_labels=230,
    estimate={"accuracy": 0.88},
)
CANDIDATE = VersionGauges(version="4", role="candidate", rows=20)  # too few rows: no values
GAUGES = Gauges(
    "production",
    "clf",
    (STABLE, CANDIDATE),
    (AlertGauge("drift", "warning", True), AlertGauge("quality-drop", "critical", False)),
)


def parsed(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_every_gauge_parses_with_its_labels() -> None:
    text = g.render(GAUGES)
    samples = parsed(text)
    base = {"env": "production", "model": "clf", "version": "3", "role": "stable"}
    assert samples[key("conveyor_monitor_window_rows", **base)] == 500
    assert samples[key("conveyor_monitor_window_end_timestamp_seconds", **base)] == 1.7e9
    assert samples[key("conveyor_monitor_drift_share", **base)] == 0.5
    assert samples[key("conveyor_monitor_drift_count", **base)] == 1
    assert samples[key("conveyor_monitor_feature_drift", **base, feature="age")] == 0.31
    assert samples[key("conveyor_monitor_feature_drifted", **base, feature="age")] == 1
    weird = 'we"ird\\name\n'
    assert samples[key("conveyor_monitor_feature_drifted", **base, feature=weird)] == 0
    assert samples[key("conveyor_monitor_missing_share", **base, feature=weird)] == 0.25
    assert samples[key("conveyor_monitor_missing_share", **base)] == 0.125
    assert samples[key("conveyor_monitor_prediction_drift", **base)] == 0.2
    assert samples[key("conveyor_monitor_violations_share", **base)] == 0.01
    assert samples[key("conveyor_monitor_quality", **base, metric="accuracy")] == 0.91
    assert samples[key("conveyor_monitor_quality_labels", **base)] == 230
    assert samples[key("conveyor_monitor_estimate", **base, metric="accuracy")] == 0.88
    alert = {"env": "production", "model": "clf", "severity": "warning"}
    assert samples[key("conveyor_monitor_alert_firing", **alert, alertname="drift")] == 1
    alert["severity"] = "critical"
    assert samples[key("conveyor_monitor_alert_firing", **alert, alertname="quality-drop")] == 0
    # The candidate's window had too few rows: its rows, nothing made up.
    candidate = {k: v for k, v in samples.items() if ("version", "4") in k[1]}
    assert list(candidate) == [
        key("conveyor_monitor_window_rows", **{**base, "version": "4", "role": "candidate"})
    ]
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert set(families) == set(g.NAMES) and set(families.values()) == {"gauge"}
    assert g.valid(text)


def test_label_sets_are_bounded() -> None:
    many = tuple(FeatureGauges(f"f{i:04d}", drift=0.1) for i in range(500))
    made = Gauges(
        "e",
        "m",
        (
            VersionGauges("1", "stable", 1, features=many, quality={"auc": 0.5, "accuracy": 1}),
            VersionGauges("2", "primary", 1),  # not a role
        ),
    )
    samples = parsed(g.render(made))
    features = {dict(k[1])["feature"] for k in samples if k[0] == "conveyor_monitor_feature_drift"}
    assert len(features) == g.MAX_FEATURES and "f0000" in features
    assert {dict(k[1])["metric"] for k in samples if k[0] == "conveyor_monitor_quality"} == {
        "accuracy"
    }
    assert {dict(k[1])["version"] for k in samples if "version" in dict(k[1])} == {"1"}


def test_numbers_render_in_the_format() -> None:
    odd = VersionGauges(
        "1", "stable", 0, drift_share=math.nan, prediction_drift=math.inf, window_end=1e-7
    )
    made = Gauges("e", "m", (odd,))
    text = g.render(made)
    assert 'role="stable"} NaN' in text and 'role="stable"} +Inf' in text
    assert 'role="stable"} 1e-07' in text and g.valid(text)
    assert g.render(Gauges("e", "m")) == ""


def test_write_then_read_back(tmp_path: Path) -> None:
    written = g.write(tmp_path, GAUGES)
    assert written == tmp_path / ".conveyor" / "monitor" / "production" / "gauges.prom"
    assert g.read(tmp_path, "production") == g.render(GAUGES)
    assert [p.name for p in written.parent.iterdir()] == ["gauges.prom"]  # no temp file left
    g.write(tmp_path, Gauges("production", "clf"))
    assert g.read(tmp_path, "production") == ""
    assert g.read(tmp_path, "staging") == ""  # never written


def test_each_new_file_is_read_and_an_unchanged_one_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    valid = g.valid

    def counted(text: str) -> bool:
        checked.append(text)
        return valid(text)

    monkeypatch.setattr(g, "valid", counted)
    for share in (0.1, 0.2, 0.3):  # same size each time: the rename makes each one new
        g.write(tmp_path, Gauges("e", "m", (VersionGauges("1", "stable", 9, drift_share=share),)))
        assert f"}} {share}\n" in g.read(tmp_path, "e")
    assert len(checked) == 3
    assert "} 0.3\n" in g.read(tmp_path, "e") and len(checked) == 3  # unchanged: not read again


@pytest.mark.parametrize(
    "text",
    [
        "conveyor_monitor_drift_share 0.5\n",  # no TYPE before it
        '# TYPE conveyor_monitor_drift_share gauge\nconveyor_monitor_drift_share{env="a"} 0.5',
        "# TYPE conveyor_requests_total counter\nconveyor_requests_total 5\n",  # not ours
        "# TYPE conveyor_monitor_drift_share gauge\nconveyor_monitor_drift_share 1_000\n",
        '# TYPE conveyor_monitor_drift_share gauge\nconveyor_monitor_drift_share{env="a} 1\n',
        "# TYPE conveyor_monitor_drift_share gauge\nconveyor_monitor_drift_share 1 17000\n",
        "# TYPE conveyor_monitor_drift_share counter\nconveyor_monitor_drift_share 1\n",
        "\x00\x01binary\n",
    ],
)
def test_a_damaged_file_is_not_read(tmp_path: Path, text: str) -> None:
    target = g.path(tmp_path, "production")
    target.parent.mkdir(parents=True)
    target.write_text(text)
    assert g.read(tmp_path, "production") == ""


def test_a_huge_file_is_not_read(tmp_path: Path) -> None:
    target = g.write(tmp_path, GAUGES)
    line = "# HELP conveyor_monitor_drift_share padding\n"
    with target.open("a") as f:
        f.write(line * (g.MAX_BYTES // len(line) + 1))
    assert g.read(tmp_path, "production") == ""
    target.write_bytes(b"\xff\xfe")
    assert g.read(tmp_path, "production") == ""


def test_an_environment_name_never_leaves_the_folder(tmp_path: Path) -> None:
    assert g.read(tmp_path, "../../etc") == ""
    with pytest.raises(Exception, match="not an environment"):
        g.write(tmp_path, Gauges("..", "clf"))


def test_a_windows_values_by_rule_name_land_where_the_rules_look() -> None:
    """Every per-window metric an alert can name, given by that name, is rendered on the
    series (and labels) the exported rule's PromQL selects."""
    from conveyor.monitor import export
    from conveyor.monitor.rules import parse_when

    values = {"rows": 800.0, "drift.share": 0.5, "drift.count": 2.0, "drift.age": 0.31,
              "drift.size": 0.02, "missing.share": 0.1, "missing.age": 0.2,
              "violations.share": 0.01, "prediction_drift": 0.12, "quality.accuracy": 0.93,
              "estimate.accuracy": 0.9, "quality.auc": 0.7}  # fmt: skip
    made = g.from_values("2", "candidate", values, window_end=1.7e9, drifted=["age"],
                         quality_labels=210)  # fmt: skip
    assert made.rows == 800 and made.drift_count == 2 and made.quality_labels == 210
    assert made.features == (
        FeatureGauges("age", drift=0.31, drifted=True, missing=0.2),
        FeatureGauges("size", drift=0.02, drifted=False),
    )
    samples = parsed(g.render(Gauges("production", "clf", (made,))))
    for name, value in values.items():
        if name == "quality.auc":  # not a quality metric: never a series
            continue
        selector = export.selector(parse_when(f"{name} > 0").metric)
        wanted = {"env": "production", "model": "clf", "version": "2", "role": "candidate",
                  **{k: v for k, v in selector.labels if v}}  # fmt: skip
        assert samples[key(selector.name, **wanted)] == value, name
    assert samples[key("conveyor_monitor_feature_drifted", env="production", model="clf",
                       version="2", role="candidate", feature="age")] == 1  # fmt: skip
    assert not any(dict(k[1]).get("metric") == "auc" for k in samples)
