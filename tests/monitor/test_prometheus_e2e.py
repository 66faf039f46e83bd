"""A real Prometheus (Debian's) scraping a real `conveyor serve --env production` on loopback,
with the rule file `conveyor monitor export prometheus` writes: the monitor's gauges written
through :func:`conveyor.monitor.gauges.write` reach Prometheus through the server's /metrics,
the generated alert fires when the drift share passes its threshold and resolves when it falls
back, and the recording rules give the server's traffic its environment. Every wait is bounded.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.monitor import gauges
from conveyor.monitor.gauges import Gauges, VersionGauges
from tests.deploy.projects import environment
from tests.deploy.test_rollouts_e2e import ENV, ROW, conveyor, make, until
from tests.serve.conftest import Server

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="Debian's prometheus is not installed (apt-get install prometheus; .ci/run does)",
    ),
    pytest.mark.timeout(120),
]

MONITOR = """\
monitor:
  production:
    reference: data/train.csv
    window: {every: 1m}
    alerts:
      - {name: drift, when: "drift.share > 0.5", for: 1 window, severity: critical}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """``prometheus`` on a free loopback port, scraping ``target`` every second."""

    def __init__(self, folder: Path, target: str, rules: Path) -> None:
        folder.mkdir()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "conveyor", "static_configs": [{"targets": [target]}]}],
        }
        (folder / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = (folder / "prometheus.log").open("w")
        assert PROMETHEUS is not None
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.folder = folder
        assert until(self.ready, 20), self.logged()

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(self.url + path + query, timeout=5) as resp:
            return json.loads(resp.read())

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.logged()
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def alerts(self) -> dict[str, dict[str, Any]]:
        found = self.get("/api/v1/alerts")["data"]["alerts"]
        return {a["labels"]["alertname"]: a for a in found}

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["data"]["result"]
        return result

    def logged(self) -> str:
        self.log.flush()
        return (self.folder / "prometheus.log").read_text()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Server, Prometheus]]:
    """One project, server and Prometheus for the module's tests (they start in ~5 s)."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    started = time.monotonic()
    root = make(tmp_path / "p", {"v1": {}}, config=environment() + MONITOR)
    conveyor(root, "monitor", "export", "prometheus", "production", "--out", "monitoring")
    drift(root, 0.0)
    # The gauges are this test's to write: the server runs no monitor that would write them.
    server = Server(root, "--env", "production", "--no-monitor", env=ENV)
    prometheus = None
    try:
        target = server.url.removeprefix("http://")
        rules = root / "monitoring" / "conveyor-rules.yml"
        prometheus = Prometheus(tmp_path / "prometheus", target, rules)
        print(f"project, server and Prometheus up in {time.monotonic() - started:.1f} s")
        yield root, server, prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        server.stop()


def drift(root: Path, share: float) -> None:
    window = VersionGauges("1", "stable", 500, time.time(), drift_share=share, drift_count=3)
    gauges.write(root, Gauges("production", "clf", (window,)))


def test_the_generated_alert_fires_and_resolves_on_the_servers_gauges(
    stack: tuple[Path, Server, Prometheus],
) -> None:
    root, server, prometheus = stack
    share = 'conveyor_monitor_drift_share{env="production"}'
    assert until(lambda: bool(prometheus.query(share)), 10), prometheus.logged()
    assert "drift" not in prometheus.alerts()

    drift(root, 0.8)
    written = time.monotonic()
    assert until(lambda: prometheus.alerts().get("drift", {}).get("state") == "firing", 15), (
        prometheus.alerts(),
        prometheus.logged(),
    )
    print(f"firing {time.monotonic() - written:.1f} s after the gauges were written")
    fired = prometheus.alerts()["drift"]
    assert fired["labels"] == {
        "alertname": "drift",
        "severity": "critical",
        "env": "production",
        "model": "clf",
        "version": "1",
        "role": "stable",
        "instance": server.url.removeprefix("http://"),
        "job": "conveyor",
    }
    assert float(fired["value"]) == 0.8
    assert fired["annotations"]["description"].startswith("drift.share is 0.8 for clf version 1")

    drift(root, 0.1)
    lowered = time.monotonic()
    assert until(lambda: "drift" not in prometheus.alerts(), 15), prometheus.alerts()
    print(f"resolved {time.monotonic() - lowered:.1f} s after the share fell back")


def test_the_recording_rules_give_the_servers_traffic_its_environment(
    stack: tuple[Path, Server, Prometheus],
) -> None:
    _, server, prometheus = stack

    def traffic() -> list[dict[str, Any]]:
        for _ in range(5):
            status, _, _ = server.request("POST", "/invocations", ROW)
            assert status == 200
        return prometheus.query('conveyor:requests:rate5m{env="production"} > 0')

    assert until(lambda: bool(traffic()), 15, step=0.5), prometheus.logged()
    (series,) = traffic()
    assert series["metric"] == {
        "__name__": "conveyor:requests:rate5m",
        "env": "production",
        "model": "clf",
        "version": "1",
        "role": "stable",
    }
    errors = prometheus.query('conveyor:error_rate:ratio_rate5m{env="production"}')
    assert [float(e["value"][1]) for e in errors] == [0.0]
    assert until(
        lambda: bool(prometheus.query('conveyor:latency_p99:seconds5m{env="production"} > 0')), 10
    )
