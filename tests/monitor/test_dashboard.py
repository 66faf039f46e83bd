"""The Grafana dashboard, panel by panel: ids, places on the grid, data sources, and queries
that name series the server, the monitor or the recording rules export (and that promtool
parses)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.monitor import export, gauges
from conveyor.monitor.config import Drift, Monitor, Quality
from conveyor.monitor.dashboard import grafana_dashboard
from conveyor.serve.metrics import Metrics

MONITOR = Monitor(env="production", reference="r.csv", drift=Drift(share=0.4),
                  quality=Quality(min=0.9))  # fmt: skip
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
PANEL_TYPES = {"timeseries", "bargauge", "table", "stat"}


def served_series() -> set[str]:
    """Every series name a server following an environment exports."""
    m = Metrics()
    m.request("clf", "1", "invocations", 200, 0.01)
    m.batch("clf", "1", 1)
    m.serving("models:/clf@production", "clf", "1")
    m.reload("clf", "loaded")
    m.deployed("production", "clf", "1", "", "idle", "canary", 0.0)
    return {line.split("{")[0].split(" ")[0] for line in m.render().splitlines() if line[:1] != "#"}


KNOWN = served_series() | set(gauges.NAMES) | set(export.RECORDED) | {"ALERTS"}


def loaded(monitor: Monitor | None = MONITOR, env: str = "production") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(grafana_dashboard(monitor, env)))
    return doc  # JSON through and through


def test_the_dashboard_and_its_variables() -> None:
    doc = loaded()
    assert doc["schemaVersion"] == 39 and doc["uid"] == "conveyor-production"
    assert doc["title"] == "conveyor: production"
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert list(variables) == ["DS_PROMETHEUS", "env", "model", "version"]
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["env"]["current"]["value"] == "production"
    for name in ("env", "model", "version"):
        assert variables[name]["datasource"] == DATASOURCE
        (series,) = re.findall(r"label_values\((\w+)", variables[name]["definition"])
        assert series in KNOWN
    assert variables["version"]["includeAll"] and variables["version"]["allValue"] == ".*"
    assert len(loaded(None, "x" * 60)["uid"]) <= 40


def test_every_panel() -> None:
    panels = loaded()["panels"]
    titles = [p["title"] for p in panels]
    for wanted in ("Requests/s", "Error rate", "Latency p50 and p99", "Drift share",
                   "Drift by feature", "Prediction drift", "Quality", "Alerts firing"):  # fmt: skip
        assert any(t.startswith(wanted) for t in titles), wanted
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["datasource"] == DATASOURCE
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs)
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE
            names = re.findall(r"([A-Za-z_:][\w:]*)\{", target["expr"])
            assert names, target["expr"]
            assert set(names) <= KNOWN, f"{panel['title']}: {set(names) - KNOWN}"
            assert '"$env"' in target["expr"], "every query is one environment's"


def test_the_monitors_thresholds_are_drawn() -> None:
    panels = {p["title"]: p for p in loaded()["panels"]}
    drift = panels["Drift share (features drifted)"]["fieldConfig"]["defaults"]
    assert drift["thresholds"]["steps"][1] == {"color": "red", "value": 0.4}
    quality = panels["Quality (labels) and estimate (no labels)"]["fieldConfig"]["defaults"]
    assert quality["thresholds"]["steps"] == [
        {"color": "red", "value": None},
        {"color": "green", "value": 0.9},
    ]
    bare = {p["title"]: p for p in loaded(None)["panels"]}
    assert "thresholds" not in bare["Drift share (features drifted)"]["fieldConfig"]["defaults"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_parses_every_query(tmp_path: Path) -> None:
    exprs = [t["expr"] for p in loaded()["panels"] for t in p["targets"]]
    values = {"$env": "production", "$model": "clf", "$version": ".*"}
    rules = []
    for i, expr in enumerate(exprs):
        for variable, value in values.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query:{i}", "expr": expr})
    doc = {"groups": [{"name": "q", "rules": rules}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(doc))
    checked = subprocess.run(["promtool", "check", "rules", "queries.yml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
