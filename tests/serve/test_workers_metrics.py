"""Metrics summed across worker processes: snapshots in files, merged by the answering worker
(in-process with an injected clock), then a real ``conveyor serve --workers 2`` on loopback."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.serve import workers
from conveyor.serve.metrics import Metrics, exposition, families, merge
from conveyor.serve.workers import Shared
from tests.serve.conftest import Server


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, read back by the reference parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, got), value in values(text).items()
        if sample == name and all((k, v) in got for k, v in labels.items())
    )


def worker(seed: int) -> Metrics:
    metrics = Metrics()
    for i in range(seed):
        metrics.request("clf", "1", "infer", 200 if i % 4 else 503, 0.002 * (i + 1))
    metrics.request("clf", "2", "infer", 200, 0.01, role="candidate")
    metrics.batch("clf", "1", seed)
    metrics.in_flight["clf"] = seed
    metrics.serving("models:/clf@prod", "clf", "1")
    metrics.log_pending_bytes = 10 * seed
    return metrics


def test_merge_sums_counters_and_buckets_sums_load_gauges_and_unites_facts() -> None:
    a, b = worker(3), worker(5)
    b.serving("models:/clf/2", "clf", "2", role="candidate")
    merged = exposition(merge([families(a.render()), families(b.render())]))
    got = values(merged)
    assert total(merged, "conveyor_requests_total", role="stable") == 8
    assert total(merged, "conveyor_requests_total", status="503") == 2 + 1  # i = 0 and 4
    assert total(merged, "conveyor_requests_total", role="candidate") == 2
    stable = (("endpoint", "infer"), ("model", "clf"), ("role", "stable"), ("version", "1"))
    bucket = "conveyor_request_duration_seconds_bucket"
    assert got[(bucket, (*stable[:1], ("le", "+Inf"), *stable[1:]))] == 8
    assert got[(bucket, (*stable[:1], ("le", "0.005"), *stable[1:]))] == 2 + 2
    assert got[("conveyor_request_duration_seconds_count", stable)] == 8
    assert got[("conveyor_requests_in_flight", (("model", "clf"),))] == 8
    assert got[("conveyor_prediction_log_pending_bytes", ())] == 80
    info = {labels for (name, labels), _ in got.items() if name == "conveyor_model_info"}
    assert {dict(i)["version"] for i in info} == {"1", "2"}  # a union, each once
    assert all(v == 1 for (name, _), v in got.items() if name == "conveyor_model_info")
    # the merged text is what the answering worker alone would say when it is the only one
    assert exposition(merge([families(a.render())])) == a.render()


def test_gone_workers_keep_their_counters_and_lose_their_gauges() -> None:
    a, b = worker(2), worker(6)
    merged = exposition(merge([families(a.render())], gone=[families(b.render())]))
    assert total(merged, "conveyor_requests_total", role="stable") == 8
    assert total(merged, "conveyor_batch_size_count") == 2
    assert total(merged, "conveyor_requests_in_flight") == 2
    assert total(merged, "conveyor_prediction_log_pending_bytes") == 20


def test_a_family_the_merge_does_not_know_is_merged_by_its_type() -> None:
    text = (
        "# HELP conveyor_shadow_comparisons_total Copies compared.\n"
        "# TYPE conveyor_shadow_comparisons_total counter\n"
        'conveyor_shadow_comparisons_total{model="clf",version="2",result="agree"} 4\n'
        "# HELP conveyor_deployment_weight Percent to the candidate.\n"
        "# TYPE conveyor_deployment_weight gauge\n"
        'conveyor_deployment_weight{env="prod",model="clf"} 10\n'
    )
    later = text.replace("} 4", "} 6").replace("} 10", "} 50")
    merged = exposition(merge([families(later), families(text)]))
    assert total(merged, "conveyor_shadow_comparisons_total") == 10
    assert total(merged, "conveyor_deployment_weight") == 50  # the answering worker's


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_shared_folder_answers_the_sum_whichever_worker_renders(tmp_path: Path) -> None:
    clock = Clock()
    a, b = worker(3), worker(5)
    sa = Shared(a, tmp_path, pid=101, clock=clock)
    sb = Shared(b, tmp_path, pid=102, clock=clock)
    sb.publish()
    first = sa.render()
    assert total(first, "conveyor_requests_total") == 3 + 1 + 5 + 1
    a.request("clf", "1", "infer", 200, 0.001)
    # b reads a's file as a's scrape left it: never less than that scrape said
    assert total(sb.render(), "conveyor_requests_total") == 10
    sa.publish()  # a's next snapshot (every INTERVAL seconds, and at each of its scrapes)
    second = sb.render()
    assert total(second, "conveyor_requests_total") == 11
    assert total(second, "conveyor_requests_in_flight") == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["101.json", "102.json"]
    # b stops answering: after STALE seconds its gauges go, its counters stay
    clock.now += workers.STALE + 1
    sa.publish()
    os.utime(tmp_path / "101.json", (clock.now, clock.now))
    later = sa.render()
    assert total(later, "conveyor_requests_total") == 11
    assert total(later, "conveyor_requests_in_flight") == 3


def test_a_reused_pid_moves_the_old_snapshot_aside(tmp_path: Path) -> None:
    old = worker(4)
    Shared(old, tmp_path, pid=7).publish()
    new = Metrics()
    shared = Shared(new, tmp_path, pid=7)
    text = shared.render()
    assert total(text, "conveyor_requests_total") == 5  # the old worker's, counted as gone
    assert total(text, "conveyor_requests_in_flight") == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "7-" + names[0][2:] and names[0].endswith(".gone.json")
    assert names[1] == "7.json"


def test_unchanged_metrics_only_touch_the_file(tmp_path: Path) -> None:
    metrics = worker(2)
    shared = Shared(metrics, tmp_path, pid=5)
    shared.publish()
    path = tmp_path / "5.json"
    inode = path.stat().st_ino
    os.utime(path, (1, 1))
    shared.publish()
    assert path.stat().st_ino == inode and path.stat().st_mtime > 1
    metrics.request("clf", "1", "infer", 200, 0.1)
    shared.publish()
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    doc = json.loads(path.read_text())
    assert doc["pid"] == 5 and not list(tmp_path.glob(".*.tmp"))


def test_sharing_names_the_folder_for_the_workers_and_removes_it(tmp_path: Path) -> None:
    dead = tmp_path / ".conveyor" / "serve" / "999999999-abcd"  # a killed server's folder
    dead.mkdir(parents=True)
    assert os.environ.get(workers.ENV) is None
    with workers.sharing(tmp_path) as folder:
        assert os.environ[workers.ENV] == str(folder) and folder.is_dir()
        assert folder.parent == tmp_path / ".conveyor" / "serve"
        assert Shared.from_environment(Metrics()) is not None
        assert not dead.exists()
    assert workers.ENV not in os.environ and not folder.exists()
    assert Shared.from_environment(Metrics()) is None
    (tmp_path / "readonly").mkdir()
    (tmp_path / "readonly" / ".conveyor").write_text("not a folder")
    with workers.sharing(tmp_path / "readonly") as folder:
        assert folder.is_dir() and tmp_path not in folder.parents
    assert not folder.exists()


# -- a real server with two workers ----------------------------------------------------------


def scrape(server: Server) -> str:
    status, body, _ = server.request("GET", "/metrics")
    assert status == 200
    return body.decode()


def answered(text: str) -> float:
    return total(text, "conveyor_requests_total", model="clf", endpoint="invocations", status="200")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_workers_scrape_sums_to_every_request(registered: Path) -> None:
    server = Server(registered, "models:/clf@production", "--workers", "2")
    try:
        body = json.dumps({"inputs": np.zeros((2, 3)).tolist()}).encode()
        sent = 240

        def call(_: int) -> int:
            return server.request("POST", "/invocations", body)[0]

        # Both workers loaded: a loading worker takes no connection, so asking /ready cannot
        # tell; each worker's snapshot names the version it serves once it is loaded.
        shared = registered / ".conveyor" / "serve"
        deadline = time.monotonic() + 60
        while sum(_loaded(p) for p in shared.glob("*/*.json")) < 2:
            assert time.monotonic() < deadline, "the workers did not get ready"
            time.sleep(0.05)
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(call, range(sent))) == {200}
        (folder,) = (registered / ".conveyor" / "serve").iterdir()
        seen: list[float] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # each worker's file is at most INTERVAL old
            seen.append(answered(scrape(server)))
            if seen[-1] == sent and len(seen) >= 5:
                break
            time.sleep(0.1)
        assert seen[-1] == sent, seen
        assert seen == sorted(seen)  # never backwards, whichever worker answered
        shares = {p.name: requests_in(p) for p in folder.glob("*.json")}
        assert len(shares) == 2 and all(n > 0 for n in shares.values()), shares
        # a worker killed: uvicorn starts another; what the dead one answered stays counted
        victim = int(min(shares).removesuffix(".json"))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(list(folder.glob("*.json"))) < 3 and time.monotonic() < deadline:
            server.request("GET", "/metrics")
            time.sleep(0.2)
        assert len(list(folder.glob("*.json"))) == 3
        while call(0) != 200:  # the new worker may still be loading its model (503)
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for _ in range(10):
            assert answered(scrape(server)) >= sent
        time.sleep(workers.STALE + 0.5)
        after = scrape(server)
        assert answered(after) == sent + 1
        assert total(after, "conveyor_requests_in_flight") == 0
    finally:
        log = server.stop()
    assert not folder.exists(), log


def requests_in(path: Path) -> float:
    """The requests one worker's snapshot file counts."""
    doc = json.loads(path.read_text())
    (family,) = (f for f in doc["families"] if f[0] == "conveyor_requests_total")
    return sum(value for _, value in family[3])


def _loaded(snapshot: Path) -> bool:
    """Whether a worker's snapshot says it serves a version (it may be replaced meanwhile)."""
    try:
        return "conveyor_model_info{" in snapshot.read_text()
    except OSError:
        return False


def test_a_link_among_the_shared_folders_is_never_followed(tmp_path: Path) -> None:
    """A cloned project may hold .conveyor/serve/<dead pid>-x as a link elsewhere: sweeping
    the folders of stopped servers removes neither the link's target nor what it holds."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    base = tmp_path / "project" / ".conveyor" / "serve"
    base.mkdir(parents=True)
    (base / "999999999-abcd").symlink_to(outside, target_is_directory=True)
    with workers.sharing(tmp_path / "project") as folder:
        assert folder.parent == base
    assert (outside / "keep.txt").read_text() == "mine"
