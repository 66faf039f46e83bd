"""`conveyor feedback add FILE`: a CSV or Parquet file's labels into the project's feedback
folder, the same segments the server writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conveyor.monitor import feedback, predlog
from conveyor.serve.predlog import PredictionLog
from tests.conftest import Project

pytestmark = pytest.mark.timeout(120)


def test_labels_from_a_csv_are_added_and_duplicates_reported(project: Project) -> None:
    project.write("labels.csv", "id,label\nr1,1\nr2,0\nr1,0\n")
    out = project.ok("feedback", "add", "labels.csv")
    assert "added 2 labels to .conveyor/feedback (1 duplicates skipped)" in out
    folder = feedback.folder(project.root)
    assert [(x["id"], x["label"]) for x in feedback.read(folder)] == [("r1", 1), ("r2", 0)]
    assert all(p.name.endswith(".jsonl") for p in folder.iterdir())  # finished segments
    project.write("more.csv", "id,label\nr2,1\nr3,1\n")
    out = project.ok("feedback", "add", "more.csv")
    assert "added 1 labels" in out and "(1 duplicates skipped)" in out


def test_parquet_labels_join_the_prediction_log(project: Project) -> None:
    log = PredictionLog(project.root / ".conveyor" / "predictions")
    for i in range(4):
        log.record(f"req-{i}", "clf", "3", "invocations", [[i]], ["yes" if i < 2 else "no"])
    log.close()
    frame = pd.DataFrame({"id": [f"req-{i}" for i in range(4)], "label": ["yes"] * 4})
    frame.to_parquet(project.root / "labels.parquet")
    assert "added 4 labels" in project.ok("feedback", "add", "labels.parquet")
    joined = feedback.join(
        predlog.read(project.root / ".conveyor" / "predictions", "clf"),
        feedback.read(feedback.folder(project.root)),
    )
    assert joined.versions == {"3": feedback.Tally(4, 2)}


def test_dir_names_another_folder(project: Project, tmp_path: Path) -> None:
    project.write("labels.csv", "id,label\nr1,cat\n")
    out = project.ok("feedback", "add", "labels.csv", "--dir", str(tmp_path / "elsewhere"))
    assert "added 1 labels" in out
    assert [x["label"] for x in feedback.read(tmp_path / "elsewhere")] == ["cat"]
    assert not feedback.folder(project.root).exists()


def test_a_missing_file_or_column_is_a_clear_error(project: Project) -> None:
    result = project.run("feedback", "add", "nowhere.csv")
    assert result.code == 2
    assert "nowhere.csv: no such file" in result.err and "hint:" in result.err
    assert "Traceback" not in result.err
    project.write("wrong.csv", "request_id,truth\nr1,1\n")
    result = project.run("feedback", "add", "wrong.csv")
    assert result.code == 1
    assert "has no id and no label column (its columns: request_id, truth)" in result.err
    assert "hint: a feedback file has an id column" in result.err
    project.write("bad.csv", "id,label\nr1,1\n,1\n")
    result = project.run("feedback", "add", "bad.csv")
    assert result.code == 1 and "bad.csv line 3: id is empty" in result.err
    assert not feedback.folder(project.root).exists()  # nothing of a refused file is written
