"""Feedback's format, writer, reader and its join with a real prediction log (segments written
by the server's own :class:`~conveyor.serve.predlog.PredictionLog`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conveyor.foundation.errors import PathError
from conveyor.monitor import feedback, predlog
from conveyor.serve.predlog import PredictionLog
from tests.monitor.killed import killed_after

pytestmark = pytest.mark.timeout(60)

DAY = 24 * 3600.0


def logged(folder: Path, answers: list[tuple[str, str, Any]]) -> list[dict[str, Any]]:
    """(request id, version, outputs) logged for model clf through the server's writer, read
    back through the monitor's reader."""
    log = PredictionLog(folder)
    for rid, version, outputs in answers:
        log.record(rid, "clf", version, "invocations", [[0.0, 1.0]], outputs)
    log.close()
    return list(predlog.read(folder, "clf"))


def test_labels_join_the_versions_that_answered_by_request_id(tmp_path: Path) -> None:
    records = logged(
        tmp_path / "predictions",
        [
            ("r1", "1", [1]),  # a classifier's one row: a one-element list
            ("r2", "1", [0]),
            ("r3", "2", [[1]]),  # a row of one output
            ("r4", "2", [0]),
            ("r5", "2", [1, 0]),  # two rows in one request: no one value to compare
        ],
    )
    now = records[0]["ts"] + 5
    labels = [
        feedback.label("r1", 1, now),
        feedback.label("r2", 1, now),
        feedback.label("r3", "1", now),  # from a CSV: the same class
        feedback.label("r4", False, now),
        feedback.label("r5", 1, now),
        feedback.label("nobody", 1, now),
    ]
    joined = feedback.join(records, labels)
    assert joined.tally("1") == feedback.Tally(labelled=2, correct=1)
    assert joined.tally(2) == feedback.Tally(labelled=2, correct=2)
    assert joined.tally("9") == feedback.Tally()
    assert (joined.joined, joined.unknown, joined.uncomparable) == (5, 1, 1)
    assert (joined.duplicates, joined.late) == (0, 0)
    assert joined.tally("1").accuracy == 0.5


def test_the_first_label_wins_and_duplicates_are_counted() -> None:
    records = [_record("r1", "1", [1], ts=100.0)]
    labels = [
        feedback.label("r1", 0, 300.0),
        feedback.label("r1", 1, 200.0),  # received first (by another process)
        feedback.label("r1", 0, 400.0),
    ]
    joined = feedback.join(records, labels)
    assert joined.tally("1") == feedback.Tally(1, 1)
    assert (joined.joined, joined.duplicates) == (1, 2)


def test_late_labels_are_joined_and_counted() -> None:
    records = [_record("old", "1", [1], ts=0.0), _record("new", "1", [1], ts=7.5 * DAY)]
    labels = [feedback.label("old", 1, 8 * DAY), feedback.label("new", 0, 8 * DAY)]
    joined = feedback.join(records, labels)
    assert joined.tally("1") == feedback.Tally(2, 1)
    assert (joined.joined, joined.late) == (2, 1)
    assert feedback.join(records, labels, late_after=9 * DAY).late == 0


def test_a_label_joins_each_version_that_answered_once() -> None:
    records = [
        _record("r1", "1", [1], ts=10.0),
        _record("r1", "1", [0], ts=11.0),  # a retry, answered by the same version
        _record("r1", "2", [0], ts=10.0),  # a shadow copy
    ]
    joined = feedback.join(records, [feedback.label("r1", 1, 20.0)])
    assert joined.versions == {"1": feedback.Tally(1, 1), "2": feedback.Tally(1, 0)}
    assert joined.joined == 1


def test_since_leaves_out_earlier_predictions_without_calling_them_unknown() -> None:
    records = [_record("before", "1", [1], ts=10.0), _record("after", "2", [1], ts=30.0)]
    labels = [feedback.label(i, 1, 40.0) for i in ("before", "after", "stray")]
    joined = feedback.join(records, labels, since=20.0)
    assert joined.versions == {"2": feedback.Tally(1, 1)}
    assert (joined.joined, joined.unknown) == (1, 1)


@pytest.mark.parametrize(
    ("label", "prediction", "equal"),
    [
        (1, 1, True),
        (1, 1.0, True),
        ("1", 1, True),
        (1, "1.0", True),
        (True, 1, True),
        ("cat", "cat", True),
        ("cat", "dog", False),
        ("cat", 1, False),
        (0, 1, False),
    ],
)
def test_same_class_across_types(label: Any, prediction: Any, equal: bool) -> None:
    assert feedback.same(label, prediction) is equal


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ([1, 2], "item 3: not an object"),
        ({"label": 1}, 'item 3: no "id"'),
        ({"id": 7, "label": 1}, "item 3: id is not a string (got the number 7)"),
        ({"id": "", "label": 1}, "item 3: id is empty"),
        ({"id": "x" * 129, "label": 1}, "item 3: id is 129 characters"),
        ({"id": "r"}, 'item 3: no "label"'),
        ({"id": "r", "label": [1]}, "item 3: label is not a JSON scalar (got a list)"),
        ({"id": "r", "label": {"a": 1}}, "item 3: label is not a JSON scalar (got an object)"),
        ({"id": "r", "label": None}, "item 3: label is null"),
    ],
)
def test_a_bad_item_is_named(item: Any, message: str) -> None:
    with pytest.raises(feedback.FeedbackError) as caught:
        feedback.check(item, "item 3")
    assert caught.value.message.startswith(message)


def test_fresh_skips_ids_seen_before_or_earlier_in_the_batch() -> None:
    pairs = [("a", 1), ("b", 0), ("a", 0), ("c", 1)]
    labels, duplicates = feedback.fresh(pairs, {"c"}, 5.0)
    assert [(x["id"], x["label"], x["ts"]) for x in labels] == [("a", 1, 5.0), ("b", 0, 5.0)]
    assert duplicates == 2


def test_the_writer_appends_whole_batches_that_a_reader_sees_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "feedback"
    writer = feedback.Writer(folder)
    writer.write([feedback.label("a", 1, 1.0), feedback.label("b", 0, 1.0)])
    (part,) = folder.iterdir()
    assert part.name.endswith(".jsonl.part")
    assert [x["id"] for x in feedback.read(folder)] == ["a", "b"]  # while being written
    writer.write([feedback.label("c", 1, 2.0)])
    writer.close()
    (done,) = folder.iterdir()
    assert done.name.endswith(".jsonl") and done.name.startswith(part.name[:15])
    assert list(feedback.read(folder)) == [
        {"id": "a", "label": 1, "ts": 1.0},
        {"id": "b", "label": 0, "ts": 1.0},
        {"id": "c", "label": 1, "ts": 2.0},
    ]


def test_a_full_segment_is_finished_and_a_new_one_begun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedback, "SEGMENT_RECORDS", 2)
    writer = feedback.Writer(tmp_path)
    for i in range(5):
        writer.write([feedback.label(f"r{i}", i, float(i))])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n.endswith(".part") for n in names] == [False, False, True]
    writer.close()
    assert [x["id"] for x in feedback.read(tmp_path)] == [f"r{i}" for i in range(5)]


def test_a_killed_writer_leaves_only_whole_records(tmp_path: Path) -> None:
    """A process killed (SIGKILL) while writing: its ``.part`` is read up to the last whole
    line; a line cut in the middle is never read."""
    killed_after(
        "from conveyor.monitor import feedback\n"
        "w = feedback.Writer(Path(sys.argv[1]))\n"
        "w.write([feedback.label(f'r{i}', i % 2) for i in range(100)])\n",
        tmp_path,
    )
    (part,) = tmp_path.iterdir()
    assert part.name.endswith(".jsonl.part")
    with part.open("ab") as file:  # what a write cut by the kill would have left
        file.write(b'{"id": "r100", "lab')
    assert [x["id"] for x in feedback.read(tmp_path)] == [f"r{i}" for i in range(100)]
    seen = feedback.Seen(tmp_path)
    assert seen.refresh() == {f"r{i}" for i in range(100)}


def test_a_failed_write_is_an_error_and_the_next_write_starts_afresh(tmp_path: Path) -> None:
    folder = tmp_path / "feedback"
    writer = feedback.Writer(folder)
    writer.write([feedback.label("a", 1, 1.0)])
    shutil.rmtree(folder)  # removed under the open segment: not written into the void
    folder.write_text("a file in the way")
    with pytest.raises(feedback.FeedbackError, match="cannot store feedback") as caught:
        writer.write([feedback.label("b", 1, 2.0)])
    assert caught.value.hint
    folder.unlink()
    writer.write([feedback.label("c", 1, 3.0)])
    writer.close()
    assert [x["id"] for x in feedback.read(folder)] == ["c"]


def test_seen_reads_only_what_was_added_since(tmp_path: Path) -> None:
    seen = feedback.Seen(tmp_path / "feedback")
    assert seen.refresh() == set()  # no folder yet
    writer = feedback.Writer(tmp_path / "feedback")
    writer.write([feedback.label("a", 1)])
    assert seen.refresh() == {"a"}
    writer.write([feedback.label("b", 1)])
    writer.close()  # renamed: the offset read so far carries over
    feedback.append(tmp_path / "feedback", [feedback.label("c", 0)])
    assert seen.refresh() == {"a", "b", "c"}
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "feedback").iterdir()}
    assert seen._tail.offsets == sizes


def test_append_writes_one_finished_segment_in_a_projects_folder(tmp_path: Path) -> None:
    (tmp_path / ".conveyor").mkdir()
    path = feedback.append(tmp_path, [feedback.label("a", 1, 1.0), feedback.label("b", 2, 1.0)])
    assert path is not None and path.parent == feedback.folder(tmp_path)
    assert path.name.endswith(".jsonl")
    assert [x["id"] for x in feedback.read(feedback.folder(tmp_path))] == ["a", "b"]
    assert feedback.append(tmp_path, []) is None


def test_concurrent_writers_lose_no_line(tmp_path: Path) -> None:
    writer = feedback.Writer(tmp_path)

    def post(t: int) -> None:
        for i in range(50):
            writer.write([feedback.label(f"t{t}-{i}-{j}", j) for j in range(3)])

    threads = [threading.Thread(target=post, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    ids = [x["id"] for x in feedback.read(tmp_path)]
    assert len(ids) == len(set(ids)) == 4 * 50 * 3


def test_add_takes_a_csv_or_parquet_table(tmp_path: Path) -> None:
    folder = tmp_path / "feedback"
    csv = tmp_path / "labels.csv"
    csv.write_text("id,label\na,1\nb,0\na,0\n")
    added = feedback.add(folder, csv, now=9.0)
    assert (added.accepted, added.duplicates) == (2, 1)
    parquet = tmp_path / "more.parquet"
    pd.DataFrame({"id": ["b", "c"], "label": ["cat", "NA"]}).to_parquet(parquet)
    added = feedback.add(folder, parquet, now=10.0)
    assert (added.accepted, added.duplicates) == (1, 1)
    assert [(x["id"], x["label"]) for x in feedback.read(folder)] == [
        ("a", 1),
        ("b", 0),
        ("c", "NA"),
    ]


def test_a_bad_table_is_refused_whole(tmp_path: Path) -> None:
    folder = tmp_path / "feedback"
    with pytest.raises(PathError, match="no such file"):
        feedback.table(tmp_path / "missing.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("request,label\na,1\n")
    with pytest.raises(feedback.FeedbackError, match=r"no id column \(its columns: request"):
        feedback.add(folder, wrong)
    gap = tmp_path / "gap.csv"
    gap.write_text("id,label\na,1\nb,\n")
    with pytest.raises(feedback.FeedbackError, match=r"gap\.csv line 3: label is empty"):
        feedback.add(folder, gap)
    other = tmp_path / "labels.json"
    other.write_text("[]")
    with pytest.raises(feedback.FeedbackError, match=r"not a \.csv or \.parquet"):
        feedback.table(other)
    assert not folder.exists()


def test_monitor_reads_feedback_without_the_server() -> None:
    code = (
        "import sys\n"
        "import conveyor.monitor.feedback\n"
        "print(sorted(m for m in sys.modules if m.startswith(('conveyor.serve', "
        "'conveyor.pipeline', 'conveyor.tune', 'pandas'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.stdout.strip() == "[]"


def _record(rid: str, version: str, outputs: Any, ts: float) -> dict[str, Any]:
    return {**predlog.record(rid, "clf", version, "invocations", [], outputs), "ts": ts}
