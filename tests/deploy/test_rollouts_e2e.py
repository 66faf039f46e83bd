"""Rollouts against a real ``conveyor serve --env`` process on loopback, under real traffic from
threads: a good candidate promoted through every step, a failing one aborted within one
analysis interval, ``conveyor rollback`` under load, and a server restarted mid-rollout.
Every wait is bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.registry.deployment import EVENT_KINDS
from tests.conftest import GIT_ENV
from tests.deploy.projects import environment, package, shadow_environment
from tests.serve.conftest import Server

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, **GIT_ENV, "PYTHONPATH": SRC}
ROW = json.dumps({"inputs": [[0.5, 1.0, -1.0]]}).encode()


def conveyor(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    code = "import sys; from conveyor.cli.main import run; sys.argv[0] = 'conveyor'; run()"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=root, env=ENV, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, f"conveyor {' '.join(args)}: {proc.stderr}"
    return proc


def make(
    root: Path, versions: dict[str, dict[str, float]], config: str | None = None, **env: Any
) -> Path:
    """A project whose clf versions are ``versions`` (folder -> package options), registered in
    order, with the production environment (``config``, else ``environment(**env)``); version
    1 deployed (all traffic)."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True, env=ENV)
    conveyor(root, "init")
    for folder, options in versions.items():
        package(root, folder, **options)  # type: ignore[arg-type]
        conveyor(root, "models", "register", "clf", folder)
    with (root / "conveyor.yaml").open("a") as f:
        f.write(config or environment(**env))
    conveyor(root, "deploy", "clf/1", "--env", "production")
    return root


def record(root: Path) -> dict[str, object]:
    (shown,) = json.loads(conveyor(root, "rollout", "status", "production", "--json").stdout)
    return shown["record"]  # type: ignore[no-any-return]


class Load:
    """Threads posting one row each to /invocations until stopped; what answered, and the
    failures (a non-200 or no answer)."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url + "/invocations"
        self.answers: list[tuple[float, str]] = []  # (time, version)
        self.failures: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            req = urllib.request.Request(self.url, data=ROW, method="POST")
            req.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    resp.read()
                    self.answers.append((time.time(), resp.headers["x-model-version"]))
            except urllib.error.HTTPError as exc:
                self.failures.append((time.time(), f"{exc.code}: {exc.read()[:200]!r}"))
            except OSError as exc:
                self.failures.append((time.time(), repr(exc)))

    def since(self, at: float) -> Counter[str]:
        """Which versions answered, from ``at`` (``time.time()``) on."""
        return Counter(version for t, version in list(self.answers) if t >= at)

    def steady(self) -> bool:
        """Answers and no failure over the last second."""
        second = time.time() - 1
        return sum(self.since(second).values()) > 10 and not self.failures_since(second)

    def failures_since(self, at: float) -> list[float]:
        return [t for t, _ in list(self.failures) if t >= at]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


@pytest.fixture
def started() -> Iterator[Callable[..., object]]:
    """Start servers and loads; stopped (loads first) at the end whatever happened."""
    things: list[object] = []

    def start(thing: object) -> object:
        things.append(thing)
        return thing

    yield start
    for thing in reversed(things):
        thing.stop()  # type: ignore[attr-defined]


def timeline(root: Path, load: Load, origin: float) -> str:
    """The rollout's events and the candidate's last answers, in seconds from ``origin``: what
    a failed timing assertion needs to be understood."""
    history = json.loads(conveyor(root, "rollout", "history", "production", "--json").stdout)
    lines = [f"{e['time'] - origin:+.2f} {e['kind']} {str(e['data'])[:200]}" for e in history]
    answers = [round(t - origin, 2) for t, v in list(load.answers) if v == "2"][-10:]
    failures = [round(t - origin, 2) for t, _ in list(load.failures)][-10:]
    return "\n".join([*lines, f"candidate answers {answers}", f"failures {failures}"])


def exported_events(server: Server) -> dict[str, float]:
    """``conveyor_rollout_events_total`` by kind, as the server's ``/metrics`` says."""
    text = server.request("GET", "/metrics")[1].decode()
    return {
        s.labels["kind"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "conveyor_rollout_events"
        for s in family.samples
    }


def up(
    started: Callable[..., object], root: Path, threads: int = 2, env: dict[str, str] = ENV
) -> tuple[Server, Load]:
    """Production served from ``root`` and under load: answered, and no failure for a second."""
    server = started(Server(root, "--env", "production", env=env))
    assert isinstance(server, Server)
    load = started(Load(server.url, threads=threads))
    assert isinstance(load, Load)
    assert until(load.steady, 20), load.failures[-3:]
    return server, load


def until(what: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(step)
    return what()


def test_a_good_candidate_is_promoted_through_every_step(
    tmp_path: Path, started: Callable[..., object]
) -> None:
    root = make(tmp_path / "p", {"v1": {}, "v2": {}}, pause="1s", interval="500ms")
    server = started(Server(root, "--env", "production", env=ENV))
    assert isinstance(server, Server)
    load = started(Load(server.url))
    assert isinstance(load, Load)
    assert until(lambda: len(load.answers) > 20, 20)
    conveyor(root, "deploy", "clf/2", "--env", "production")
    assert until(lambda: record(root)["status"] != "progressing", 40, step=0.3), record(root)
    final = record(root)
    assert (final["status"], final["stable"], final["candidate"]) == ("promoted", 2, None)
    done = time.time()
    assert until(lambda: sum(load.since(done + 0.5).values()) > 10, 10)
    assert set(load.since(done + 0.5)) == {"2"}
    load.stop()
    assert load.failures == []
    assert {"1", "2"} <= {v for _, v in load.answers}
    shown = conveyor(root, "models", "show", "clf@production", "--json").stdout
    assert json.loads(shown)["version"] == 2
    history = conveyor(root, "rollout", "history", "production").stdout
    assert "promoted" in history and "analysis" in history


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_failing_candidate_is_aborted_within_one_interval(
    tmp_path: Path, started: Callable[..., object], workers: str
) -> None:
    """With two workers the controller judges the sum of both workers' metrics."""
    root = make(tmp_path / "p", {"v1": {}, "v2": {"fail_every": 5}}, interval="1s")
    server = started(Server(root, "--env", "production", "--workers", workers, env=ENV))
    assert isinstance(server, Server)
    load = started(Load(server.url, threads=3))
    assert isinstance(load, Load)
    # Every worker up (the first one ready may not be the last: a request to one still
    # loading its model is refused), then the candidate.
    assert until(load.steady, 20), load.failures[-3:]
    deployed = time.time()
    conveyor(root, "deploy", "clf/2", "--env", "production")
    assert until(lambda: bool(load.failures_since(deployed)), 5), "the candidate never failed"
    assert until(lambda: record(root)["status"] == "aborted", 10, step=0.2), record(root)
    after = time.time() + 1.0  # the server's poll and the requests in flight are done by then
    assert until(lambda: sum(load.since(after).values()) > 20, 10)
    assert set(load.since(after)) == {"1"}
    # From the candidate's first failure to all traffic on stable: the target is 2 s
    # with a 1 s interval (one interval to see it, the server's 0.2 s poll to apply it).
    failing = min(load.failures_since(deployed))
    last_candidate = max(t for t, v in list(load.answers) if v == "2")
    last_failure = max(t for t, _ in load.failures)
    took = max(last_candidate, last_failure) - failing
    print(f"first failure to the candidate's last answer: {took:.2f} s")
    assert took <= 2.0, timeline(root, load, failing)
    final = record(root)
    assert (final["stable"], final["candidate"], final["weight"]) == (1, 2, 0)
    shown = json.loads(conveyor(root, "models", "show", "clf@production", "--json").stdout)
    assert shown["version"] == 1
    history = conveyor(root, "rollout", "history", "production", "--json").stdout
    kinds = [e["kind"] for e in json.loads(history)]
    assert "rollout.aborted" in kinds
    fail = [e for e in json.loads(history) if e["kind"] == "rollout.analysis"][-1]
    assert fail["data"]["verdict"] == "fail"
    # /metrics counts the store's events once, however many workers read them.
    stored = Counter(kinds)
    wanted = {kind: float(stored[kind]) for kind in EVENT_KINDS}
    assert until(lambda: exported_events(server) == wanted, 5), exported_events(server)


def children(pid: int) -> list[tuple[int, str]]:
    """The processes ``pid`` started: (pid, command line)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            raw = Path(f"/proc/{child}/cmdline").read_bytes()
            found.append((int(child), raw.replace(b"\0", b" ").decode(errors="replace")))
    return found


def test_the_candidates_process_killed_stable_answers_everything_and_the_rollout_aborts(
    tmp_path: Path, started: Callable[..., object]
) -> None:
    """The candidate answers from a process of its own: killed mid-canary, no request fails
    (what was at the candidate is answered by stable), the rollout aborts, the alias stays."""
    root = make(
        tmp_path / "p", {"v1": {}, "v2": {}}, pause="60s", deadline="120s", candidate="process"
    )
    server, load = up(started, root, threads=3)
    conveyor(root, "deploy", "clf/2", "--env", "production")
    assert until(lambda: load.since(time.time() - 1)["2"] > 10, 20), "the candidate never answered"
    (host,) = [pid for pid, line in children(server.proc.pid) if "conveyor.serve.host" in line]
    os.kill(host, 9)
    killed = time.time()
    assert until(lambda: record(root)["status"] == "aborted", 10, step=0.2), record(root)
    assert "candidate's process was killed" in str(record(root)["message"])
    after = time.time() + 0.5
    assert until(lambda: sum(load.since(after).values()) > 20, 10)
    assert set(load.since(after)) == {"1"}
    assert sum(load.since(killed).values()) > 20
    load.stop()
    assert load.failures == [], load.failures[:3]
    shown = json.loads(conveyor(root, "models", "show", "clf@production", "--json").stdout)
    assert shown["version"] == 1
    (aborted,) = [
        e for e in json.loads(conveyor(root, "rollout", "history", "production", "--json").stdout)
        if e["kind"] == "rollout.aborted"
    ]  # fmt: skip
    assert "candidate's process" in aborted["data"]["reason"]
    # started again for the next rollout
    assert until(lambda: any("conveyor.serve.host" in c for _, c in children(server.proc.pid)), 10)


def test_a_shadow_copied_every_request_to_its_own_process_and_was_promoted_on_agreement(
    tmp_path: Path, started: Callable[..., object]
) -> None:
    """Stable answers everything while every request is copied to the candidate's process,
    where the answers are compared; the rollout is judged on that agreement."""
    root = make(tmp_path / "p", {"v1": {}, "v2": {}}, config=shadow_environment())
    server, load = up(started, root)
    conveyor(root, "deploy", "clf/2", "--env", "production")
    assert any("conveyor.serve.host" in line for _, line in children(server.proc.pid))
    done = until(lambda: record(root)["status"] != "progressing", 30, step=0.3)
    assert done, timeline(root, load, time.time())
    final = record(root)
    assert (final["status"], final["stable"]) == ("promoted", 2), timeline(root, load, time.time())
    history = json.loads(conveyor(root, "rollout", "history", "production", "--json").stdout)
    judged = [e for e in history if e["kind"] == "rollout.analysis"]
    checks = {c["metric"]: c for c in judged[-1]["data"]["checks"]}
    assert checks["agreement"]["verdict"] == "pass"
    text = server.request("GET", "/metrics")[1].decode()
    compared = {
        s.labels["result"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "conveyor_shadow_comparisons"
        for s in family.samples
    }
    assert compared.get("agree", 0) > 50 and "disagree" not in compared  # v2 answers as v1
    load.stop()
    assert load.failures == []
    shadowed = [t for t, v in load.answers if v == "2"]
    assert (
        not shadowed
        or min(shadowed)
        >= max(e["time"] for e in history if e["kind"] in ("rollout.promoted", "alias.moved")) - 1.0
    )  # the shadow never answered a client before its promotion


def post(server: Server, path: str, body: bytes = b"", token: str | None = None) -> int:
    req = urllib.request.Request(server.url + path, data=body, method="POST")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_promoted_over_http_with_the_token_and_no_request_fails(
    tmp_path: Path, started: Callable[..., object]
) -> None:
    """``POST /deployments/production/promote`` as ``rollout promote --full``; the candidate's
    process answers everything until the workers hold the promoted version."""
    root = make(
        tmp_path / "p", {"v1": {}, "v2": {}}, pause="60s", deadline="120s", candidate="process"
    )
    token = "t0ken-for-the-test"
    server, load = up(started, root, threads=3, env={**ENV, "CONVEYOR_ADMIN_TOKEN": token})
    conveyor(root, "deploy", "clf/2", "--env", "production")
    assert until(lambda: load.since(time.time() - 1)["2"] > 5, 20), "the candidate never answered"
    assert post(server, "/deployments/production/promote", b'{"full": true}') == 401
    assert record(root)["status"] == "progressing"
    assert post(server, "/deployments/production/promote", b'{"full": true}', token) == 200
    final = record(root)
    assert (final["status"], final["stable"], final["candidate"]) == ("promoted", 2, None)
    after = time.time() + 0.5
    assert until(lambda: sum(load.since(after).values()) > 20, 10)
    assert set(load.since(after)) == {"2"}
    assert post(server, "/deployments/production/promote", b"", token) == 409  # nothing to promote
    load.stop()
    assert load.failures == [], load.failures[:3]


def test_rollback_under_load_fails_no_request(
    tmp_path: Path, started: Callable[..., object]
) -> None:
    root = make(tmp_path / "p", {"v1": {}, "v2": {}})
    conveyor(root, "deploy", "clf/2", "--env", "production")
    conveyor(root, "rollout", "promote", "--full", "production")
    server = started(Server(root, "--env", "production", env=ENV))
    assert isinstance(server, Server)
    load = started(Load(server.url))
    assert isinstance(load, Load)
    assert until(lambda: len(load.answers) > 20, 20)
    assert set(load.since(0)) == {"2"}
    conveyor(root, "rollback", "production")
    after = time.time()
    assert until(lambda: sum(load.since(after + 0.5).values()) > 20, 10)
    assert set(load.since(after + 0.5)) == {"1"}
    load.stop()
    assert load.failures == []
    shown = json.loads(conveyor(root, "models", "show", "clf@production", "--json").stdout)
    assert shown["version"] == 1


def test_a_restarted_server_resumes_the_same_step(
    tmp_path: Path, started: Callable[..., object]
) -> None:
    # A long pause after the first step: the rollout waits there across the restart.
    root = make(tmp_path / "p", {"v1": {}, "v2": {}}, pause="1h", interval="500ms")
    first = Server(root, "--env", "production", env=ENV)
    load = Load(first.url)
    try:
        assert until(lambda: len(load.answers) > 20, 20)
        conveyor(root, "deploy", "clf/2", "--env", "production")
        assert until(lambda: record(root)["step"] == 1, 30, step=0.3), record(root)
    finally:
        load.stop()
        first.stop()
    before = record(root)
    server = started(Server(root, "--env", "production", env=ENV))
    assert isinstance(server, Server)
    load = started(Load(server.url))
    assert isinstance(load, Load)
    assert until(lambda: {"1", "2"} <= set(load.since(0)), 20)  # the candidate served again
    time.sleep(1.5)  # three ticks of the new controller
    after = record(root)
    assert (after["step"], after["status"], after["weight"]) == (1, "progressing", 20)
    assert after["step_started"] == before["step_started"]
    conveyor(root, "rollout", "promote", "production")  # the pause ends by hand: 50 %, then
    assert until(lambda: int(record(root)["step"]) >= 2, 10), record(root)  # the next pause
    assert until(lambda: "2" in load.since(time.time() - 0.5), 10)
    load.stop()
    assert load.failures == []


def test_a_slow_candidate_is_aborted(tmp_path: Path, started: Callable[..., object]) -> None:
    check = "{metric: latency_p99, max_ratio: 1.25, min_samples: 20}"
    root = make(tmp_path / "p", {"v1": {}, "v2": {"delay": 0.05}}, checks=(check,))
    server = started(Server(root, "--env", "production", env=ENV))
    assert isinstance(server, Server)
    load = started(Load(server.url, threads=3))
    assert isinstance(load, Load)
    assert until(lambda: len(load.answers) > 20, 20)
    conveyor(root, "deploy", "clf/2", "--env", "production")
    assert until(lambda: record(root)["status"] == "aborted", 15, step=0.3), record(root)
    load.stop()
    assert load.failures == []  # slow, not failing: every request was answered
    history = json.loads(conveyor(root, "rollout", "history", "production", "--json").stdout)
    (latency,) = [e for e in history if e["kind"] == "rollout.analysis"][-1]["data"]["checks"]
    assert latency["metric"] == "latency_p99" and latency["verdict"] == "fail"
    assert latency["candidate"] >= 0.05 > latency["stable"]


def test_without_traffic_the_rollout_waits_then_aborts_at_the_deadline(
    tmp_path: Path, started: Callable[..., object]
) -> None:
    root = make(tmp_path / "p", {"v1": {}, "v2": {}}, deadline="3s", interval="500ms")
    server = started(Server(root, "--env", "production", env=ENV))
    assert isinstance(server, Server)
    conveyor(root, "deploy", "clf/2", "--env", "production")
    assert until(lambda: record(root)["status"] == "aborted", 15, step=0.3), record(root)
    history = json.loads(conveyor(root, "rollout", "history", "production", "--json").stdout)
    began = [e for e in history if e["kind"] == "rollout.started"][-1]
    during = [e for e in history if e["id"] > began["id"]]
    verdicts = [e["data"]["verdict"] for e in during if e["kind"] == "rollout.analysis"]
    assert len(verdicts) >= 2 and set(verdicts) == {"inconclusive"}  # it waited, no pass
    (aborted,) = [e for e in during if e["kind"] == "rollout.aborted"]
    assert aborted["time"] - began["time"] >= 3  # not before the deadline
    assert "deadline" in str(record(root)["message"])


TOKEN = "e2e-admin-token"
LABELLED = """\
deploy:
  production:
    model: clf
    strategy:
      canary:
        steps: [{weight: 50}, {pause: 1h}, {weight: 100}]
    analysis:
      interval: 500ms
      deadline: 60s
      checks:
        - {metric: accuracy, min_change: -0.02, confidence: 0.95, min_samples: 100}
"""


class Labelled:
    """Threads posting random rows; the request id, the true label (x0 > 0) and the version
    of each answer, for labels to be sent later as feedback."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url + "/invocations"
        self.answers: list[tuple[str, int, str]] = []
        self.failures = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, seed: int) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        while not self._stop.is_set():
            row = rng.normal(size=3)
            body = json.dumps({"inputs": [row.tolist()]}).encode()
            req = urllib.request.Request(self.url, data=body, method="POST")
            req.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    resp.read()
                    rid, version = resp.headers["x-request-id"], resp.headers["x-model-version"]
                    self.answers.append((rid, int(row[0] > 0), version))
            except OSError:
                self.failures += 1

    def count(self, version: str) -> int:
        return sum(1 for _, _, v in list(self.answers) if v == version)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def test_a_candidate_worse_on_labels_is_aborted_once_they_arrive(
    tmp_path: Path, started: Callable[..., object]
) -> None:
    """Version 2 is wrong on about 10 % of rows; labels arrive through `conveyor feedback add`,
    then POST /feedback. Too few labels is no verdict; enough of them aborts the rollout."""
    root = make(tmp_path / "p", {"v1": {}, "v2": {"wrong": 0.25}}, config=LABELLED)
    server = started(
        Server(root, "--env", "production", env={**ENV, "CONVEYOR_ADMIN_TOKEN": TOKEN})
    )
    assert isinstance(server, Server)
    load = started(Labelled(server.url, threads=3))
    assert isinstance(load, Labelled)
    conveyor(root, "deploy", "clf/2", "--env", "production")
    sent: set[str] = set()

    def label(most: int | None = None, *, post: bool = False) -> int:
        """Feedback for the answers not labelled yet (at most ``most`` of the candidate's):
        a CSV through `conveyor feedback add`, or ``post``ed to the server."""
        rows, candidate = [], 0
        for rid, truth, version in list(load.answers):
            if rid in sent:
                continue
            if version == "2":
                if most is not None and candidate >= most:
                    continue
                candidate += 1
            rows.append((rid, truth))
            sent.add(rid)
        if post:
            for i in range(0, len(rows), 5000):  # a server takes up to 10 000 in one body
                body = [{"id": rid, "label": truth} for rid, truth in rows[i : i + 5000]]
                status, answer, _ = server.json(
                    "POST", "/feedback", body, headers={"Authorization": f"Bearer {TOKEN}"}
                )
                assert status == 200 and answer["accepted"] == len(body), answer
        else:
            lines = "".join(f"{rid},{truth}\n" for rid, truth in rows)
            (root / "labels.csv").write_text("id,label\n" + lines)
            conveyor(root, "feedback", "add", "labels.csv")
        return candidate

    assert until(lambda: load.count("2") >= 60, 20), "the candidate got no traffic"
    assert label(most=60) == 60  # fewer than the check's 100 on the candidate's side

    def last_accuracy() -> dict[str, Any]:
        history = json.loads(conveyor(root, "rollout", "history", "production", "--json").stdout)
        analysed = [e for e in history if e["kind"] == "rollout.analysis"]
        return analysed[-1]["data"]["checks"][0] if analysed else {"samples": [0, 0]}

    # The controller joins labels every few seconds: wait for a join that saw these.
    assert until(lambda: last_accuracy()["samples"][1] == 60, 10, step=0.5), last_accuracy()
    assert last_accuracy()["verdict"] == "inconclusive"
    assert record(root)["status"] == "progressing"
    assert until(lambda: load.count("2") >= 250, 30)
    label(post=True)
    assert until(lambda: record(root)["status"] == "aborted", 15, step=0.5), record(root)
    load.stop()
    assert load.failures == 0
    accuracy = last_accuracy()
    assert accuracy["verdict"] == "fail" and accuracy["samples"][1] >= 200
    assert accuracy["stable"] == 1.0 and 0.8 < accuracy["candidate"] < 0.95
