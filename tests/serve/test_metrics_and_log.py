"""The Prometheus exposition (read back with the reference parser) and the prediction log."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from conveyor.serve import predlog
from conveyor.serve.metrics import Metrics


def test_exposition_parses_and_counts() -> None:
    metrics = Metrics()
    for seconds in (0.0004, 0.003, 0.2):
        metrics.request("clf", "3", "infer", 200, seconds)
    metrics.request("clf", "3", "invocations", 400, 0.001)
    metrics.batch("clf", "3", 5)
    metrics.in_flight["clf"] = 2
    metrics.models["clf"] = ("3", 'models:/clf@prod"uction')
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
    assert families["conveyor_requests_in_flight"].samples[0].value == 2


def test_sampling_is_decided_by_the_request_id() -> None:
    ids = [f"req-{i}" for i in range(2000)]
    chosen = [i for i in ids if predlog.sampled(i, 0.25)]
    assert 400 < len(chosen) < 600
    assert chosen == [i for i in ids if predlog.sampled(i, 0.25)]
    assert all(predlog.sampled(i, 1.0) for i in ids[:10])
    assert not any(predlog.sampled(i, 0.0) for i in ids[:10])


def test_log_segments_are_finished_on_close_and_readable(tmp_path: Path) -> None:
    log = predlog.PredictionLog(tmp_path, interval=0.05)
    log.record("r1", "clf", "3", "infer", np.array([[1.0, 2.0]]), np.array([1]))
    log.record(
        "r2", "clf", "3", "invocations", {"a": np.array(["x"], dtype=object)}, np.array([0.5])
    )
    log.close()
    (segment,) = (tmp_path / "clf").iterdir()
    assert segment.suffix == ".jsonl"
    records = list(predlog.read(tmp_path))
    assert [(r["id"], r["version"], r["endpoint"]) for r in records] == [
        ("r1", "3", "infer"),
        ("r2", "3", "invocations"),
    ]
    assert records[0]["inputs"] == [[1.0, 2.0]] and records[0]["outputs"] == [1]
    assert records[1]["inputs"] == {"a": ["x"]}


def test_a_killed_writer_leaves_complete_lines_only(tmp_path: Path) -> None:
    folder = tmp_path / "clf"
    folder.mkdir()
    part = folder / f"20260101T000000-{os.getpid()}.jsonl.part"
    part.write_bytes(b'{"id": "r1", "model": "clf"}\n{"id": "r2", "mod')
    assert [r["id"] for r in predlog.read(tmp_path, "clf")] == ["r1"]


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
    (record,) = predlog.read(tmp_path)
    assert np.array_equal(record["inputs"], checked) and record["outputs"] == [1, 0]
