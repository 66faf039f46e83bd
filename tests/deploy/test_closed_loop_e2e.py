"""The loop closed with no command typed: a real ``conveyor serve --env production`` process
monitors its own traffic; the world changes (the inputs move and the true labels with them),
labels posted to /feedback show the accuracy falling, the quality alert fires, its ``retrain``
action runs the real pipeline on the newly added data, the gates pass, the new version is
registered and canaried, and the controller promotes it. And the same where the new data makes
a model the gates refuse: the retrain stops there, the receiver is told, production untouched.

The alert's receiver is a real HTTP server on loopback. Every wait is bounded.
"""

from __future__ import annotations

import http.server
import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.ci.retraining import PIPELINE, TRAIN, rows
from tests.deploy.projects import environment
from tests.deploy.test_rollouts_e2e import ENV, conveyor, record, until
from tests.serve.conftest import Server

TOKEN = "closed-loop-token"
SERVING = {**ENV, "CONVEYOR_ADMIN_TOKEN": TOKEN}
MONITOR = """\
monitor:
  production:
    reference: data/rows.csv
    label: y
    window: {{rows: 100, min_rows: 50}}
    quality: {{metric: accuracy, min: 0.9, min_labels: 40}}
    interval: 500ms
    alerts:
      - {{name: quality-drop, when: "quality.accuracy < 0.9", severity: critical,
         notify: [ops], action: retrain}}
    notify:
      ops: {{webhook: "{hook}"}}
    retrain: {{cooldown: 1h}}
"""


class Receiver(http.server.BaseHTTPRequestHandler):
    got: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        Receiver.got.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Receiver.got = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


class World:
    """Users sending one value each and, a moment later, its true label: 1 from ``boundary``
    up, for x drawn from ``low`` to ``high``. ``change()`` moves both."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.low, self.high, self.boundary = 0.0, 200.0, 100.0
        self.answered: dict[str, int] = {}
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def change(self, low: float, high: float, boundary: float) -> None:
        self.low, self.high, self.boundary = low, high, boundary

    def _run(self) -> None:
        rng = random.Random(3)
        pending: list[dict[str, object]] = []
        while not self.stopping.is_set():
            x = rng.uniform(self.low, self.high)
            rid = uuid.uuid4().hex
            body = json.dumps({"inputs": [[x]]}).encode()
            req = urllib.request.Request(
                self.url + "/invocations", data=body, method="POST",
                headers={"Content-Type": "application/json", "x-request-id": rid},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    resp.read()
                    version = resp.headers["x-model-version"]
                    self.answered[version] = self.answered.get(version, 0) + 1
                    pending.append({"id": rid, "label": int(x >= self.boundary)})
            except (urllib.error.URLError, OSError) as exc:
                self.failures.append(repr(exc))
                time.sleep(0.05)
            if len(pending) >= 20:
                feedback = urllib.request.Request(
                    self.url + "/feedback", data=json.dumps(pending).encode(), method="POST",
                    headers={"Authorization": f"Bearer {TOKEN}",
                             "Content-Type": "application/json"},
                )  # fmt: skip
                with urllib.request.urlopen(feedback, timeout=10) as resp:
                    resp.read()
                pending = []

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(15)


def project(root: Path, hook: str) -> Path:
    """The pipeline of tests.ci.retraining on 200 rows (x 0..199, y from 100 up), its model
    registered as version 1 and serving all of production, monitored."""
    root.mkdir()
    conveyor(root, "init")
    (root / "train.py").write_text(TRAIN)
    (root / "data").mkdir()
    (root / "data/rows.csv").write_text(rows(200))
    (root / "conveyor.yaml").write_text(
        PIPELINE + environment(pause="1s", interval="500ms") + MONITOR.format(hook=hook)
    )
    conveyor(root, "run", "--register")
    conveyor(root, "deploy", "clf/1", "--env", "production")
    return root


def shifted(n: int, start: int, *, noise: float = 0.0) -> str:
    """``n`` rows of the changed world: x from ``start``, labelled 1 from its middle up; a
    share ``noise`` of labels flipped (at random, seeded)."""
    rng = random.Random(5)
    lines = ["x,y"]
    for i in range(n):
        y = int(i >= n / 2)
        lines.append(f"{start + i},{1 - y if rng.random() < noise else y}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def started() -> Iterator[Callable[[Any], Any]]:
    things: list[Any] = []
    yield lambda thing: things.append(thing) or thing
    for thing in reversed(things):
        thing.stop()


def alerts(name: str) -> list[dict[str, Any]]:
    return [a for body in list(Receiver.got) for a in body["alerts"]
            if a["labels"]["alertname"] == name]  # fmt: skip


def test_drifting_traffic_is_retrained_gated_canaried_and_promoted_untouched(
    tmp_path: Path, hook: str, started: Callable[[Any], Any]
) -> None:
    root = project(tmp_path / "p", hook)
    server = started(Server(root, "--env", "production", env=SERVING))
    world = started(World(server.url))
    assert until(lambda: world.answered.get("1", 0) > 150, 30), world.failures[-3:]
    # The world changes: inputs from 400 to 600, positive from 500 up. The new labelled data
    # lands where the pipeline reads it, as a data job would put it.
    (root / "data/rows.csv").write_text(shifted(200, 400))
    world.change(400.0, 600.0, 500.0)
    # Version 1's threshold (about 100) calls every new input positive: half are wrong.
    assert until(lambda: alerts("quality-drop"), 60), (server.stop(), Receiver.got)
    (fired,) = alerts("quality-drop")
    assert fired["status"] == "firing" and float(fired["annotations"]["value"]) < 0.9
    assert fired["annotations"]["action_result"] == "retrain started"
    # retrained, gated, registered as version 2, canaried and promoted: nobody typed anything
    assert until(lambda: record(root).get("stable") == 2, 120, step=0.5), (
        server.stop(), record(root),
        conveyor(root, "rollout", "history", "production").stdout,
    )  # fmt: skip
    assert record(root)["status"] == "promoted"
    history = conveyor(root, "rollout", "history", "production", "--json").stdout
    kinds = [e["kind"] for e in json.loads(history)]
    for kind in ("retrain.started", "retrain.registered", "retrain.rollout_started",
                 "rollout.started", "rollout.promoted"):  # fmt: skip
        assert kind in kinds, kinds
    assert until(lambda: alerts("retrain"), 10)
    assert "rolling out models:/clf/2" in alerts("retrain")[0]["annotations"]["summary"]
    # version 2 answers the new world right: the alert resolves as its labels come
    assert until(lambda: world.answered.get("2", 0) > 300, 60)
    assert until(lambda: any(a["status"] == "resolved" for a in alerts("quality-drop")), 60), (
        conveyor(root, "monitor", "status", "--json").stdout
    )
    world.stop()
    assert world.failures == []


def test_a_retrain_whose_gates_fail_stops_tells_and_leaves_production(
    tmp_path: Path, hook: str, started: Callable[[Any], Any]
) -> None:
    root = project(tmp_path / "p", hook)
    server = started(Server(root, "--env", "production", env=SERVING))
    world = started(World(server.url))
    assert until(lambda: world.answered.get("1", 0) > 150, 30), world.failures[-3:]
    # the new data is noise: a model of it cannot reach the gates' accuracy of 0.6
    (root / "data/rows.csv").write_text(shifted(200, 400, noise=0.5))
    world.change(400.0, 600.0, 500.0)
    assert until(lambda: alerts("retrain"), 90), (server.stop(), Receiver.got)
    (told,) = alerts("retrain")
    assert told["status"] == "firing" and told["labels"]["severity"] == "critical"
    assert "the gates failed" in told["annotations"]["summary"]
    final = record(root)
    assert final["stable"] == 1 and final["status"] != "progressing", final
    shown = json.loads(conveyor(root, "models", "show", "clf@production", "--json").stdout)
    assert shown["version"] == 1
    assert conveyor(root, "models", "show", "clf/2", check=False).returncode != 0  # none made
    kinds = [e["kind"] for e in json.loads(
        conveyor(root, "rollout", "history", "production", "--json").stdout)]  # fmt: skip
    assert "retrain.gates_failed" in kinds and "rollout.started" not in kinds[1:]
    world.stop()
    assert world.failures == []
