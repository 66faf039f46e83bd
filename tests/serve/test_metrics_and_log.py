"""The Prometheus exposition (read back with the reference parser) and the prediction log."""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.monitor import gauges
from conveyor.monitor.predlog import read
from conveyor.serve import predlog
from conveyor.serve.metrics import Metrics, exposition, families, merge
from tests.serve.conftest import Server


def test_exposition_parses_and_counts() -> None:
    metrics = Metrics()
    for seconds in (0.0004, 0.003, 0.2):
        metrics.request("clf", "3", "infer", 200, seconds)
    metrics.request("clf", "3", "invocations", 400, 0.001)
    metrics.batch("clf", "3", 5)
    metrics.in_flight["clf"] = 2
    metrics.serving('models:/clf@prod"uction', "clf", "3")
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    requests = {
        (s.labels["endpoint"], s.labels["status"]): s.value
        for s in families["conveyor_requests"].samples
    }
    assert requests == {("infer", "200"): 3, ("invocations", "400"): 1}
    latency = families["conveyor_request_duration_seconds"]
    assert latency.type == "histogram"
    buckets = {
        s.labels["le"]: s.value
        for s in latency.samples
        if s.name.endswith("_bucket") and s.labels["endpoint"] == "infer"
    }
    assert buckets["0.0005"] == 1 and buckets["0.005"] == 2 and buckets["+Inf"] == 3
    count = [s.value for s in latency.samples if s.name.endswith("_count")]
    assert sorted(count) == [1, 3]
    (info,) = families["conveyor_model_info"].samples
    assert info.labels["uri"] == 'models:/clf@prod"uction'
    assert info.labels["role"] == "stable"
    for family in ("conveyor_requests", "conveyor_request_duration_seconds", "conveyor_batch_size"):
        assert {s.labels["role"] for s in families[family].samples} == {"stable"}
    assert families["conveyor_requests_in_flight"].samples[0].value == 2


def test_the_monitors_gauges_are_appended_at_each_scrape(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.request("clf", "3", "infer", 200, 0.01)
    alone = metrics.render()
    metrics.monitor(tmp_path, "production")
    assert metrics.render() == alone  # no file yet: nothing more
    shares = gauges.VersionGauges("3", "stable", 500, drift_share=0.75)
    gauges.write(tmp_path, gauges.Gauges("production", "clf", (shares,)))
    text = metrics.render()
    found = {f.name: f for f in text_string_to_metric_families(text)}
    (share,) = found["conveyor_monitor_drift_share"].samples
    assert share.value == 0.75 and share.labels["env"] == "production"
    assert "conveyor_requests" in found
    # Workers merge the monitor's gauges as facts every worker states alike: not summed.
    merged = exposition(merge([families(text), families(text)]))
    assert merged.count("conveyor_monitor_drift_share{") == 1 and "} 0.75\n" in merged
    # A damaged file (a hand edit, a foreign series) leaves /metrics as it was.
    path = gauges.path(tmp_path, "production")
    path.write_text(path.read_text() + "conveyor_requests_total 99\n")
    assert metrics.render() == alone


def test_log_segments_are_finished_on_close_and_readable(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, interval=0.05)
    log.record("r1", "clf", "3", "infer", np.array([[1.0, 2.0]]), np.array([1]))
    log.record(
        "r2", "clf", "3", "invocations", {"a": np.array(["x"], dtype=object)}, np.array([0.5])
    )
    log.close()
    (segment,) = (tmp_path / "clf").iterdir()
    assert segment.suffix == ".jsonl"
    records = list(read(tmp_path))
    assert [(r["id"], r["version"], r["endpoint"]) for r in records] == [
        ("r1", "3", "infer"),
        ("r2", "3", "invocations"),
    ]
    assert records[0]["inputs"] == [[1.0, 2.0]] and records[0]["outputs"] == [1]
    assert records[1]["inputs"] == {"a": ["x"]}


def test_rows_sent_unchanged_are_logged_as_sent(tmp_path: Path) -> None:
    import orjson

    from conveyor.serve.scoring import sent_rows

    body = b'{"inputs": [[1.5, 2e3], [3, 4.0]]}'
    checked = np.array([[1.5, 2000.0], [3.0, 4.0]])
    rows = sent_rows(body, checked)
    assert isinstance(rows, orjson.Fragment)
    for other in (
        b'{"inputs": [[true, 1.0]]}',  # a bool: the model took 1.0
        b'{"inputs": [[1.0, 2.0]], "params": {}}',  # another key
        b'{"inputs": [[1.0,\n2.0]]}',  # a line break would split the record
        b'{"dataframe_split": {"data": [[1.0, 2.0]]}}',
    ):
        assert sent_rows(other, checked) is None
    assert sent_rows(body, checked.astype("float32")) is None  # cast: log what the model took
    log = predlog.PredictionLog(tmp_path, interval=0.05)
    log.record("r1", "clf", "3", "invocations", rows, np.array([1, 0]))
    log.close()
    (record,) = read(tmp_path)
    assert np.array_equal(record["inputs"], checked) and record["outputs"] == [1, 0]


def test_a_log_that_cannot_write_drops_and_counts_then_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "plog"
    told: list[str] = []
    log = predlog.PredictionLog(folder, interval=0.02, buffer_bytes=20_000, notify=told.append)
    rows = np.zeros((50, 3))
    log.record("r0", "clf", "1", "infer", rows, np.zeros(50))
    log.flush()
    assert [r["id"] for r in read(folder)] == ["r0"]
    shutil.rmtree(folder)
    folder.write_text("a file where the folder was")  # root ignores permissions; not this
    for i in range(2000):
        log.record(f"r{i + 1}", "clf", "1", "infer", rows, np.zeros(50))
        assert log.pending_bytes <= 20_000
    log.flush()
    deadline = time.monotonic() + 10  # the writer thread may hold the last batch it took
    while log.dropped < 2000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.dropped == 2000 and log.failing is not None
    assert len(told) == 1 and "prediction log: cannot write" in told[0]
    folder.unlink()
    log.record("back", "clf", "1", "infer", rows, np.zeros(50))
    log.close()
    assert [r["id"] for r in read(folder)] == ["back"]
    assert log.failing is None and len(told) == 2 and "again" in told[1]


def test_a_failed_write_leaves_no_half_line(tmp_path: Path) -> None:
    # A full disk cannot be made here without privileges; /dev/full is one: every write to
    # it fails with ENOSPC, as a full disk's would.
    log = predlog.PredictionLog(tmp_path, interval=60)
    log.record("r1", "clf", "1", "infer", np.zeros((1, 3)), np.zeros(1))
    log.flush()
    (segment,) = log._files.values()
    os.dup2(os.open("/dev/full", os.O_WRONLY), segment.fd)
    log.record("r2", "clf", "1", "infer", np.zeros((1, 3)), np.zeros(1))
    log.flush()
    assert log.dropped == 1 and "No space left" in (log.failing or "")
    log.record("r3", "clf", "1", "infer", np.zeros((1, 3)), np.zeros(1))
    log.close()
    assert [r["id"] for r in read(tmp_path)] == ["r1", "r3"]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_a_server_whose_log_folder_is_gone_keeps_answering_with_bounded_memory(
    registered: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "plog"
    server = Server(
        registered, "models:/clf@production", "--log-dir", str(folder), "--log-buffer-mb", "2"
    )
    rows = json.dumps({"inputs": np.random.default_rng(0).normal(size=(200, 3)).tolist()})
    body = rows.encode()  # a log record of about 12 KB

    def load(n: int) -> list[int]:
        def one(_: int) -> int:
            return server.request("POST", "/invocations", body)[0]

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(n)))

    def dropped() -> float:
        text = server.request("GET", "/metrics")[1].decode()
        (family,) = [
            f
            for f in text_string_to_metric_families(text)
            if f.name == "conveyor_prediction_log_dropped"
        ]
        return family.samples[0].value

    try:
        assert set(load(300)) == {200}  # warm: the model, the allocator, the log's segment
        before = rss_mib(server.proc.pid)
        shutil.rmtree(folder)
        folder.write_text("a file where the folder was")  # as root, chmod would not stop it
        statuses = load(3000)  # 36 MB of records if they were all kept
        after = rss_mib(server.proc.pid)
        assert set(statuses) == {200}
        assert dropped() >= 2500
        assert after - before < 20, (before, after)
        folder.unlink()
        deadline = time.monotonic() + 30
        sent: set[str] = set()
        while True:  # logging resumes by itself once the folder can be made again
            status, _, headers = server.request("POST", "/invocations", body)
            assert status == 200
            sent.add(headers["x-request-id"])
            if sent & {r["id"] for r in read(folder, "clf")}:
                break
            assert time.monotonic() < deadline, "the log did not resume"
            time.sleep(0.3)
        count = dropped()
        assert set(load(20)) == {200} and dropped() == count  # none dropped once it works
    finally:
        output = server.stop()
    assert output.count("prediction log: cannot write") == 1, output  # once, not per request
    assert "prediction log: writing to" in output and "Traceback" not in output
