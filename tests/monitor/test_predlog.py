"""The prediction log's format, read back: sampling by request id, and segments a killed writer
left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conveyor.monitor import predlog


def test_sampling_is_decided_by_the_request_id() -> None:
    ids = [f"req-{i}" for i in range(2000)]
    chosen = [i for i in ids if predlog.sampled(i, 0.25)]
    assert 400 < len(chosen) < 600
    assert chosen == [i for i in ids if predlog.sampled(i, 0.25)]
    assert all(predlog.sampled(i, 1.0) for i in ids[:10])
    assert not any(predlog.sampled(i, 0.0) for i in ids[:10])


def test_a_killed_writer_leaves_complete_lines_only(tmp_path: Path) -> None:
    folder = tmp_path / "clf"
    folder.mkdir()
    part = folder / f"20260101T000000-{os.getpid()}.jsonl.part"
    part.write_bytes(b'{"id": "r1", "model": "clf"}\n{"id": "r2", "mod')
    assert [r["id"] for r in predlog.read(tmp_path, "clf")] == ["r1"]


def test_a_segment_is_named_by_its_start_in_utc_and_read_by_model(tmp_path: Path) -> None:
    name = predlog.segment_name(0.0, 42, 7)
    assert name == "19700101T000000-42-0007.jsonl"
    folder = predlog.model_folder(tmp_path, "my model/v2")
    assert folder == tmp_path / "my_model_v2"
    folder.mkdir()
    (folder / name).write_bytes(b'{"id": "r1"}\n')
    (folder / "notes.txt").write_text("not a segment")
    assert [r["id"] for r in predlog.read(tmp_path, "my model/v2")] == ["r1"]
    assert [r["id"] for r in predlog.read(tmp_path)] == ["r1"]


def test_a_record_holds_what_monitoring_joins_on() -> None:
    made = predlog.record("r1", "clf", "3", "infer", [[1.0]], [0])
    assert set(made) == {"id", "ts", "model", "version", "endpoint", "inputs", "outputs"}
    assert (made["id"], made["model"], made["version"]) == ("r1", "clf", "3")


def test_monitor_reads_the_log_without_the_server() -> None:
    code = (
        "import sys\n"
        "import conveyor.monitor.predlog\n"
        "print(sorted(m for m in sys.modules if m.startswith(('conveyor.serve', "
        "'conveyor.pipeline', 'conveyor.tune'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
