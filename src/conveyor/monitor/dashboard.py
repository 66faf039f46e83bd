"""A Grafana dashboard for one monitored environment: the server's traffic, errors and latency
side by side for stable and candidate, and the monitor's drift, quality and alerts.

    grafana_dashboard(monitor, env) -> Grafana's JSON model (schemaVersion 39)

It reads the series of :mod:`conveyor.monitor.gauges` and the recording rules of
:mod:`conveyor.monitor.export` (which carry the ``env`` label the server's own series lack):
load the rule file into the Prometheus the dashboard queries. The data source is a variable,
``DS_PROMETHEUS``, chosen when the dashboard is imported; ``env``, ``model`` and ``version``
are variables too, ``env`` set to the environment exported. With a :class:`Monitor`, the drift
and quality panels draw its thresholds.

Pure: plain values in, a dictionary out.
"""

from __future__ import annotations

import re
from typing import Any

from conveyor.monitor.config import Monitor

__all__ = ["SCHEMA_VERSION", "grafana_dashboard"]

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
WIDTH, HEIGHT = 12, 8  # two panels a row on Grafana's 24 columns
SEL = 'env="$env",model=~"$model",version=~"$version"'
SIDES = 'env="$env",model=~"$model",version=~"$version",role=~"stable|candidate"'


def grafana_dashboard(monitor: Monitor | None, env: str) -> dict[str, Any]:
    """The dashboard of environment ``env`` (``monitor``: its ``monitor:`` entry, if any)."""
    share = monitor.drift.share if monitor is not None else None
    quality = monitor.quality if monitor is not None else None
    specs: list[tuple[str, str, list[tuple[str, str]], dict[str, Any]]] = [
        ("Requests/s by version and role", "timeseries",
         [(f"sum by (version, role) (conveyor:requests:rate5m{{{SEL}}})",
           "v{{version}} {{role}}")], {"unit": "reqps"}),
        ("Error rate: stable vs candidate", "timeseries",
         [(f"conveyor:error_rate:ratio_rate5m{{{SIDES}}}", "v{{version}} {{role}}")],
         {"unit": "percentunit"}),
        ("Latency p50 and p99: stable vs candidate", "timeseries",
         [(f"conveyor:latency_p50:seconds5m{{{SIDES}}}", "p50 v{{version}} {{role}}"),
          (f"conveyor:latency_p99:seconds5m{{{SIDES}}}", "p99 v{{version}} {{role}}")],
         {"unit": "s"}),
        ("Drift share (features drifted)", "timeseries",
         [(f"conveyor_monitor_drift_share{{{SEL}}}", "v{{version}} {{role}}")],
         {"unit": "percentunit", "max": 1, "threshold": share}),
        ("Drift by feature (last window)", "bargauge",
         [(f"max by (feature) (conveyor_monitor_feature_drift{{{SEL}}})", "{{feature}}")],
         {"instant": True}),
        ("Prediction drift", "timeseries",
         [(f"conveyor_monitor_prediction_drift{{{SEL}}}", "v{{version}} {{role}}")], {}),
        ("Quality (labels) and estimate (no labels)", "timeseries",
         [(f"conveyor_monitor_quality{{{SEL}}}", "{{metric}} v{{version}} {{role}}"),
          (f"conveyor_monitor_estimate{{{SEL}}}", "estimated {{metric}} v{{version}} {{role}}")],
         {"threshold": quality.min if quality is not None else None, "below": True}),
        ("Missing values and schema violations", "timeseries",
         [(f'conveyor_monitor_missing_share{{{SEL},feature=""}}', "missing v{{version}}"),
          (f"conveyor_monitor_violations_share{{{SEL}}}", "violations v{{version}}")],
         {"unit": "percentunit"}),
        ("Rows per window", "timeseries",
         [(f"conveyor_monitor_window_rows{{{SEL}}}", "v{{version}} {{role}}")], {}),
        ("Alerts firing", "table",
         [('conveyor_monitor_alert_firing{env="$env",model=~"$model"} == 1', "{{alertname}}"),
          ('ALERTS{env="$env",alertstate="firing"}', "{{alertname}}")],
         {"instant": True}),
    ]  # fmt: skip
    panels = [
        _panel(i + 1, title, kind, targets, i, **options)
        for i, (title, kind, targets, options) in enumerate(specs)
    ]
    uid = "conveyor-" + re.sub(r"[^A-Za-z0-9_-]", "-", env)
    return {
        "uid": uid[:40],
        "title": f"conveyor: {env}",
        "tags": ["conveyor"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "annotations": {"list": []},
        "templating": {"list": _variables(env)},
        "panels": panels,
    }


def _panel(
    id: int,
    title: str,
    kind: str,
    targets: list[tuple[str, str]],
    index: int,
    *,
    unit: str | None = None,
    max: float | None = None,
    threshold: float | None = None,
    below: bool = False,
    instant: bool = False,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if max is not None:
        defaults["min"], defaults["max"] = 0, max
    if threshold is not None:  # red past the monitor's limit (under it, for quality)
        ok, bad = ("red", "green") if below else ("green", "red")
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": ok, "value": None}, {"color": bad, "value": threshold}],
        }
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return {
        "id": id,
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": HEIGHT, "w": WIDTH, "x": (index % 2) * WIDTH, "y": (index // 2) * HEIGHT},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                **({"instant": True, "range": False} if instant else {}),
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _variables(env: str) -> list[dict[str, Any]]:
    def query(name: str, expr: str, current: str | None = None, every: bool = False) -> Any:
        made: dict[str, Any] = {
            "name": name,
            "label": name,
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": expr, "refId": name},
            "definition": expr,
            "refresh": 2,  # on time range change
            "sort": 1,
            "includeAll": every,
            "multi": every,
        }
        if every:
            made["allValue"] = ".*"
            made["current"] = {"text": "All", "value": "$__all"}
        elif current is not None:
            made["current"] = {"text": current, "value": current}
        return made

    return [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
        },
        query("env", "label_values(conveyor_deployment_info, env)", env),
        query("model", 'label_values(conveyor_deployment_info{env="$env"}, model)'),
        query("version", 'label_values(conveyor_model_info{model=~"$model"}, version)', every=True),
    ]
