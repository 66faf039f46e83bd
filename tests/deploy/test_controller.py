"""The controller's loop on a real project store, with observations scripted and the clock
given: it advances, aborts, yields to a person's change and resumes after a restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from conveyor.deploy import flows
from conveyor.deploy.analysis import Observations, Side
from conveyor.deploy.config import environment as load_environment
from conveyor.deploy.controller import Controller, MetricsSource
from conveyor.registry import queries
from conveyor.registry.deployment import Deployment
from conveyor.tracking.db import opened
from tests.conftest import Project
from tests.deploy.projects import environment, package, shadow_environment


class Scripted:
    """A source of observations: ``requests`` per side, the candidate failing ``rate`` of
    them; ``during`` runs inside ``observe`` (someone else acting between read and write)."""

    def __init__(self, rate: float = 0.0, requests: int = 200) -> None:
        self.rate = rate
        self.requests = requests
        self.restarts = 0
        self.during: Callable[[], None] | None = None

    def observe(self, record: Deployment, labels: bool) -> Observations:
        if self.during is not None:
            self.during()
            self.during = None
        n = self.requests
        return Observations(Side(requests=n), Side(requests=n, errors=round(n * self.rate)))

    def restart(self) -> None:
        self.restarts += 1

    def idle(self) -> None:
        pass


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def root(project: Project) -> Path:
    """clf versions 1 and 2, v1 deployed to production, v2 rolling out (20 % first)."""
    for n in (1, 2):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(environment(pause="5s", deadline="30s"))
    flows.deploy(project.root, "production", "clf/1")
    return project.root


def start(root: Path, clock: Clock) -> Deployment:
    return flows.deploy(root, "production", "clf/2", now=clock.now)


def controller(root: Path, source: Scripted, clock: Clock) -> Controller:
    env = load_environment(root, "production")
    return Controller(root, env, url="http://127.0.0.1:9", clock=clock, source=source)


def stored(root: Path) -> Deployment:
    with opened(root) as store:
        record = queries.deployment(store.execute, "production")
    assert record is not None
    return record


def alias(root: Path) -> int | None:
    with opened(root) as store:
        return queries.aliases(store.execute, "clf").get("production")


def test_a_good_candidate_goes_through_every_step(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    ctl = controller(root, Scripted(rate=0.0), clock)
    seen = []
    for _ in range(40):  # 5 steps with two 5 s pauses: well within 40 one-second ticks
        record = ctl.tick()
        assert record is not None
        seen.append((record.step, record.weight, record.status))
        if record.status == "promoted":
            break
        clock.now += 1
    final = stored(root)
    assert (final.status, final.stable, final.candidate) == ("promoted", 2, None)
    assert alias(root) == 2
    weights = [w for _, w, status in seen if status == "progressing"]
    assert 20 in weights and 50 in weights
    kinds = [e.kind for e in flows.history(root, "production")]
    assert "rollout.analysis" in kinds and kinds[-1] in ("rollout.promoted", "alias.moved")


def test_a_failing_candidate_is_aborted_at_the_first_analysis(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    record = controller(root, Scripted(rate=0.2), clock).tick()
    assert record is not None
    assert (record.status, record.weight, record.candidate) == ("aborted", 0, 2)
    assert record.split() == {1: 100.0} and alias(root) == 1
    events = flows.history(root, "production")
    analysed = [e for e in events if e.kind == "rollout.analysis"]
    assert analysed and analysed[-1].data["verdict"] == "fail"
    (check,) = analysed[-1].data["checks"]
    assert check["metric"] == "error_rate" and check["verdict"] == "fail"
    assert events[-1].kind == "rollout.aborted"


def test_a_candidate_whose_process_stopped_during_the_rollout_is_aborted(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    stops: list[tuple[float, str]] = [(990.0, "the candidate's process exited with code 1")]

    def health(since: float) -> str | None:
        return next((why for when, why in reversed(stops) if when >= since), None)

    env = load_environment(root, "production")
    ctl = Controller(
        root, env, url="http://127.0.0.1:9", clock=clock, source=Scripted(), health=health
    )
    record = ctl.tick()  # stopped before this rollout began: nothing to do with it
    assert record is not None and record.status == "progressing"
    clock.now += 1
    stops.append((clock.now, "the candidate's process was killed (SIGKILL)"))
    record = ctl.tick()
    assert record is not None
    assert (record.status, record.weight, record.candidate) == ("aborted", 0, 2)
    assert alias(root) == 1
    aborted = flows.history(root, "production")[-1]
    assert aborted.kind == "rollout.aborted"
    assert aborted.data["reason"] == "the candidate's process was killed (SIGKILL)"
    assert "manual" not in aborted.data


def test_too_little_traffic_waits_then_aborts_at_the_deadline(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    source = Scripted(requests=3)  # below min_samples: inconclusive, never a pass
    ctl = controller(root, source, clock)
    record = ctl.tick()
    assert record is not None and record.status == "progressing" and record.step == 0
    restarts = source.restarts
    clock.now += 10
    record = ctl.tick()
    assert record is not None and record.step == 0
    assert source.restarts == restarts  # an inconclusive window keeps growing
    clock.now += 30  # past the 30 s deadline
    record = ctl.tick()
    assert record is not None and record.status == "aborted"


def test_a_person_acting_during_a_tick_wins(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    source = Scripted(rate=0.0)
    source.during = lambda: flows.abort(root, "production", "by hand")
    record = controller(root, source, clock).tick()
    assert record is not None and record.status == "aborted"
    assert "by hand" in record.message
    assert stored(root).status == "aborted"
    kinds = [e.kind for e in flows.history(root, "production")]
    assert kinds.count("rollout.aborted") == 1 and "rollout.analysis" not in kinds


def test_a_new_controller_resumes_at_the_same_step(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    first = controller(root, Scripted(), clock)
    record = first.tick()
    assert record is not None and record.step == 1  # the analysis passed: the 5 s pause
    first.close()
    clock.now += 2
    second = controller(root, Scripted(), clock)  # "after a restart": nothing but the store
    record = second.tick()
    assert record is not None and (record.step, record.status) == (1, "progressing")
    clock.now += 4  # the pause's 5 s counted from when it began, not from the restart
    record = second.tick()
    assert record is not None and record.step == 2 and record.weight == 50


def test_run_ticks_until_stopped(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    env = load_environment(root, "production")
    ctl = Controller(root, env, url="http://127.0.0.1:9", clock=clock, source=Scripted(rate=0.5))
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,))
    thread.start()
    try:
        for _ in range(100):
            if stored(root).status == "aborted":
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert stored(root).status == "aborted"


class Endpoint:
    """A real HTTP server on loopback: ``GET /metrics`` answers ``text``; a POST is kept with
    its headers (a webhook receiver)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.text = ""
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = outer.text.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint()
    yield served
    served.close()


def exposition(
    stable: tuple[int, int], candidate: tuple[int, int], shadow: tuple[int, int] = (0, 0)
) -> str:
    """/metrics as the server writes it: (requests, 5xx) per role, one latency bucket, and
    the shadow copies compared (agreed, disagreed)."""
    lines = ["# TYPE conveyor_requests_total counter"]
    for result, count in zip(("agree", "disagree"), shadow, strict=True):
        lines.append(
            f'conveyor_shadow_comparisons_total{{model="clf",version="2",result="{result}"}} '
            f"{count}"
        )
    for role, version, (n, errors) in (("stable", 1, stable), ("candidate", 2, candidate)):
        for status, count in (("200", n - errors), ("500", errors)):
            lines.append(
                f'conveyor_requests_total{{model="clf",version="{version}",role="{role}",'
                f'endpoint="invocations",status="{status}"}} {count}'
            )
        for le in ("0.01", "+Inf"):
            lines.append(
                f'conveyor_request_duration_seconds_bucket{{model="clf",version="{version}",'
                f'role="{role}",endpoint="invocations",le="{le}"}} {n}'
            )
    lines.append('conveyor_requests_total{model="clf",version="1",role="stable",'
                 'endpoint="ready",status="200"} 999')  # fmt: skip
    return "\n".join(lines) + "\n"


def test_metrics_source_judges_the_window_since_it_started(root: Path, endpoint: Endpoint) -> None:
    source = MetricsSource(root, endpoint.url)
    record = start(root, Clock(1000.0))
    endpoint.text = exposition((100, 0), (0, 0))
    source.idle()  # the tick before the rollout: the window's start
    endpoint.text = exposition((180, 1), (20, 4))
    seen = source.observe(record, labels=False)
    assert seen is not None
    assert (seen.stable.requests, seen.stable.errors) == (80, 1)  # probes are not traffic
    assert (seen.candidate.requests, seen.candidate.errors) == (20, 4)
    assert sum(count for _, count in seen.candidate.latency_buckets) == 20
    endpoint.text = exposition((200, 1), (25, 4))
    grown = source.observe(record, labels=False)  # no restart: the window grows
    assert grown is not None and grown.candidate.requests == 25
    source.restart()
    endpoint.text = exposition((230, 1), (35, 4))
    fresh = source.observe(record, labels=False)
    assert fresh is not None
    assert (fresh.stable.requests, fresh.candidate.requests, fresh.candidate.errors) == (30, 10, 0)


def test_an_unreadable_server_judges_nothing_but_the_deadline_still_acts(root: Path) -> None:
    clock = Clock(1000.0)
    start(root, clock)
    env = load_environment(root, "production")
    said: list[str] = []
    ctl = Controller(root, env, url="http://127.0.0.1:9", clock=clock, notify=said.append)
    for _ in range(2):  # port 9 (discard) is closed: nothing to observe
        record = ctl.tick()
        assert record is not None and (record.status, record.step) == ("progressing", 0)
    assert len(said) == 1 and "cannot read the metrics" in said[0]  # told once
    clock.now += 40  # past the 30 s deadline
    record = ctl.tick()
    assert record is not None and record.status == "aborted"
    assert len(said) == 1  # decisions are the server's follower's to tell, problems its own


def test_webhooks_hear_the_decisions_signed(
    project: Project, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.monitor.webhooks import verify

    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    for n in (1, 2):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    hook = (
        f'    webhooks:\n      - {{url: "{endpoint.url}/hook", events: [started, aborted], '
        "secret_env: HOOK_SECRET}\n"
    )
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(environment() + hook)
    clock = Clock(1000.0)
    flows.deploy(project.root, "production", "clf/1")
    flows.deploy(project.root, "production", "clf/2", now=clock.now)
    env = load_environment(project.root, "production")
    ctl = Controller(project.root, env, url=endpoint.url, clock=clock, source=Scripted(rate=0.5))
    assert ctl.tick() is not None
    ctl.close()  # delivers what is queued
    types = []
    for headers, body in endpoint.received:
        verify("s3cret", headers, body)
        doc = json.loads(body)
        types.append(doc["type"])
        assert doc["data"]["env"] == "production"
    assert types == ["rollout.started", "rollout.started", "rollout.aborted"]
    aborted = json.loads(endpoint.received[-1][1])["data"]
    assert (aborted["status"], aborted["candidate"], aborted["stable"]) == ("aborted", 2, 1)


class Traffic:
    """Predictions logged as the server logs them, and their labels received as feedback."""

    def __init__(self, root: Path, logged: Path) -> None:
        from conveyor.monitor import predlog

        self.root = root
        self.folder = predlog.model_folder(logged, "clf")
        self.folder.mkdir(parents=True)
        self.segments = iter(range(1, 10_000))

    def __call__(self, per_version: int, accuracy: dict[str, float], at: float) -> None:
        """``per_version`` predictions of each version at ``at``, right in ``accuracy`` of
        cases by their labels."""
        import orjson

        from conveyor.monitor import feedback, predlog

        lines, labels = [], []
        for version, share in accuracy.items():
            for i in range(per_version):
                rid = f"{version}-{at}-{i}"
                one = predlog.record(rid, "clf", version, "invocations", [[1.0]], [1])
                lines.append({**one, "ts": at})
                labels.append(feedback.label(rid, 1 if i < share * per_version else 0, at + 5))
        name = predlog.segment_name(at, 1, next(self.segments))
        (self.folder / name).write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
        feedback.append(self.root, labels)


def test_accuracy_comes_from_feedback_joined_with_the_prediction_log(
    project: Project, endpoint: Endpoint
) -> None:
    """Labels count per version since the rollout started; the candidate 10 points worse is
    aborted once both sides have enough labels, and not before."""
    for n in (1, 2):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    check = "{metric: accuracy, min_change: -0.02, confidence: 0.95, min_samples: 200}"
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(environment(checks=(check,)))
    flows.deploy(project.root, "production", "clf/1")
    clock = Clock(2_000_000_000.0)
    flows.deploy(project.root, "production", "clf/2", now=clock.now)
    logged = project.root / "plog"
    traffic = Traffic(project.root, logged)
    traffic(500, {"1": 0.9, "2": 0.9}, clock.now - 60)  # before the rollout: not counted
    env = load_environment(project.root, "production")
    source = MetricsSource(project.root, endpoint.url, predictions=logged, labels_every=0)
    ctl = Controller(project.root, env, url=endpoint.url, clock=clock, source=source)
    endpoint.text = exposition((0, 0), (0, 0))
    traffic(100, {"1": 0.9, "2": 0.8}, clock.now + 1)
    assert ctl.tick() is not None  # the first scrape starts the window
    clock.now += 1
    record = ctl.tick()
    assert record is not None and record.status == "progressing"  # 100 labels each: too few
    analysed = [
        e for e in flows.history(project.root, "production") if e.kind == "rollout.analysis"
    ]
    (result,) = analysed[-1].data["checks"]
    assert result["verdict"] == "inconclusive" and tuple(result["samples"]) == (100, 100)
    traffic(400, {"1": 0.9, "2": 0.8}, clock.now + 1)
    clock.now += 1
    record = ctl.tick()
    assert record is not None and record.status == "aborted", record.message
    analysed = [
        e for e in flows.history(project.root, "production") if e.kind == "rollout.analysis"
    ]
    (result,) = analysed[-1].data["checks"]
    assert result["verdict"] == "fail" and tuple(result["samples"]) == (500, 500)
    assert result["stable"] == pytest.approx(0.9) and result["candidate"] == pytest.approx(0.8)


AB = """\
deploy:
  production:
    model: clf
    strategy:
      ab: {split: 50, sticky: "header:x-user-id", metric: accuracy, confidence: 0.95,
           min_samples: 1000}
    analysis:
      interval: 1s
      checks: []
"""


@pytest.mark.parametrize(
    ("candidate", "status", "decision", "said"),
    [(0.93, "promoted", "promote", "candidate better"), (0.90, "aborted", "abort", "no different")],
)
def test_an_ab_test_ends_with_its_verdict(
    project: Project, endpoint: Endpoint, candidate: float, status: str, decision: str, said: str
) -> None:
    """A 3-point accuracy difference is found at 95 % with enough labels; equal versions are
    told apart from it (no difference: the candidate is not promoted). No verdict before
    both sides have their samples."""
    for n in (1, 2):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(AB)
    flows.deploy(project.root, "production", "clf/1")
    clock = Clock(2_000_000_000.0)
    record = flows.deploy(project.root, "production", "clf/2", now=clock.now)
    assert (record.mode, record.weight, record.sticky) == ("ab", 50, "header:x-user-id")
    logged = project.root / "plog"
    traffic = Traffic(project.root, logged)
    env = load_environment(project.root, "production")
    source = MetricsSource(project.root, endpoint.url, predictions=logged, labels_every=0)
    ctl = Controller(project.root, env, url=endpoint.url, clock=clock, source=source)
    endpoint.text = exposition((0, 0), (0, 0))
    traffic(500, {"1": 0.90, "2": candidate}, clock.now + 1)
    ctl.tick()
    clock.now += 1
    record = ctl.tick()
    assert record is not None and record.status == "progressing"  # 500 of 1000 labels
    traffic(2500, {"1": 0.90, "2": candidate}, clock.now + 1)
    clock.now += 1
    record = ctl.tick()
    assert record is not None and record.status == status, record.message
    events = flows.history(project.root, "production")
    (verdict,) = [e.data for e in events if e.kind == "rollout.verdict"]
    assert said in verdict["detail"] and verdict["decision"] == status[:-2].replace(
        "promot", "promote"
    )
    assert verdict["n_candidate"] == verdict["n_baseline"] == 3000


@pytest.mark.parametrize(("disagreed", "status"), [(2, "promoted"), (30, "aborted")])
def test_a_shadow_rollout_is_judged_on_agreement(
    project: Project, endpoint: Endpoint, disagreed: int, status: str
) -> None:
    for n in (1, 2):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(shadow_environment(min_agreement=0.98, interval="1s", checks="[]"))
    flows.deploy(project.root, "production", "clf/1")
    clock = Clock(1000.0)
    record = flows.deploy(project.root, "production", "clf/2", now=clock.now)
    assert record.mode == "shadow" and record.split() == {1: 100.0}
    env = load_environment(project.root, "production")
    ctl = Controller(project.root, env, url=endpoint.url, clock=clock)
    endpoint.text = exposition((0, 0), (0, 0))
    ctl.tick()
    endpoint.text = exposition((300, 0), (0, 0), shadow=(300 - disagreed, disagreed))
    clock.now += 1  # within the shadow's 2 s: a passing analysis is not enough yet
    record = ctl.tick()
    assert record is not None
    if status == "aborted":
        assert record.status == "aborted"
    else:
        assert record.status == "progressing"
        endpoint.text = exposition((600, 0), (0, 0), shadow=(598 - disagreed, disagreed + 2))
        clock.now += 1.5
        record = ctl.tick()
        assert record is not None and record.status == "promoted" and record.stable == 2
    analysed = [
        e for e in flows.history(project.root, "production") if e.kind == "rollout.analysis"
    ]
    agreement = [c for c in analysed[-1].data["checks"] if c["metric"] == "agreement"]
    assert agreement and agreement[0]["samples"][1] >= 300


def test_the_config_is_read_again_when_conveyor_yaml_changes(root: Path) -> None:
    import os

    clock = Clock(1000.0)
    start(root, clock)
    said: list[str] = []
    env = load_environment(root, "production")
    source = Scripted(rate=1.0, requests=5)  # every candidate request fails, but 5 < 20
    ctl = Controller(root, env, url="http://127.0.0.1:9", clock=clock, source=source,
                     notify=said.append)  # fmt: skip
    record = ctl.tick()
    assert record is not None and record.status == "progressing"  # too few to judge
    config = root / "conveyor.yaml"
    text = config.read_text()

    def rewrite(new: str) -> None:
        config.write_text(new)
        st = config.stat()
        os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    rewrite(text.replace("\ndeploy:\n", "\ndeploy: [\n"))  # being edited: does not parse
    record = ctl.tick()
    assert record is not None and record.status == "progressing"
    assert any("conveyor.yaml changed and cannot be used" in line for line in said), said
    rewrite(text.replace("min_samples: 20", "min_samples: 2"))
    record = ctl.tick()
    assert ctl.env.analysis.checks[0].min_samples == 2
    assert record is not None and record.status == "aborted"  # judged by the new checks


def test_labels_are_joined_at_most_every_so_often(project: Project, endpoint: Endpoint) -> None:
    for n in (1, 2):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(environment())
    flows.deploy(project.root, "production", "clf/1")
    record = flows.deploy(project.root, "production", "clf/2", now=2_000_000_000.0)
    logged = project.root / "plog"
    traffic = Traffic(project.root, logged)
    source = MetricsSource(project.root, endpoint.url, predictions=logged, labels_every=3600)
    endpoint.text = exposition((0, 0), (0, 0))
    source.idle()
    traffic(10, {"1": 1.0, "2": 0.5}, record.started + 1)
    seen = source.observe(record, labels=True)
    assert seen is not None
    assert (seen.stable.labelled, seen.stable.correct) == (10, 10)
    assert (seen.candidate.labelled, seen.candidate.correct) == (10, 5)
    traffic(10, {"1": 1.0, "2": 0.5}, record.started + 2)
    seen = source.observe(record, labels=True)
    assert seen is not None and seen.candidate.labelled == 10  # the last join's, for an hour
    restarted = replace(record, started=record.started + 1.5)  # another rollout: joined again
    seen = source.observe(restarted, labels=True)
    assert seen is not None and seen.candidate.labelled == 10 and seen.stable.correct == 10


def test_a_webhook_receiver_that_is_down_does_not_hold_up_a_tick(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    for n in (1, 2):
        package(project.root, f"v{n}")
        project.ok("models", "register", "clf", f"v{n}")
    hook = '    webhooks:\n      - {url: "http://127.0.0.1:9/down", events: [aborted]}\n'
    with (project.root / "conveyor.yaml").open("a") as f:
        f.write(environment() + hook)
    clock = Clock(1000.0)
    flows.deploy(project.root, "production", "clf/1")
    flows.deploy(project.root, "production", "clf/2", now=clock.now)
    env = load_environment(project.root, "production")
    ctl = Controller(project.root, env, url="http://127.0.0.1:9", clock=clock,
                     source=Scripted(rate=0.5))  # fmt: skip
    began = time.monotonic()
    record = ctl.tick()
    assert time.monotonic() - began < 1.0
    assert record is not None and record.status == "aborted"
    assert ctl.sender is not None
    ctl.sender.close(timeout=0.1)
