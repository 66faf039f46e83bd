"""Reading plots files and shaping figures (pure), and drawing them with real matplotlib."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.tracking import plots


@pytest.mark.parametrize(
    "data",
    [
        b"not json {",
        b"[1, 2, 3]",  # no objects: before, list(rows[0]) raised TypeError
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # RecursionError in json
        b"7",
    ],
)
def test_a_json_plots_file_without_rows_reads_as_none(data: bytes) -> None:
    assert plots.records(data, "p.json") == []
    assert plots.table_from(data, "p.json") == ([], [])


def test_rows_of_each_format() -> None:
    roc = {"roc": [{"fpr": 0, "tpr": 0}, {"fpr": 1, "tpr": "x"}, {"fpr": 1, "tpr": 1}]}
    assert plots.table_from(json.dumps(roc).encode(), "roc.json") == (
        ["fpr", "tpr"],
        [[0.0, 0.0], [1.0, 1.0]],
    )
    assert plots.table_from(b"step\tloss\n0\t1.5\n1\t0.5\n", "loss.tsv") == (
        ["step", "loss"],
        [[0.0, 1.5], [1.0, 0.5]],
    )
    assert plots.records(b'a,b\n"' + b"x" * 200_000 + b'",1\n', "big.csv") == []  # csv.Error


def test_a_plot_of_several_files_and_columns_labels_each_line() -> None:
    rows = [{"fpr": "0", "tpr": "0", "thr": "1"}, {"fpr": "1", "tpr": "1", "thr": "0"}]
    figure = plots.spec_figure(
        "ROC",
        "simple",
        {"train.json": "fpr", "test.json": "fpr"},
        {"train.json": ["tpr"], "test.json": ["tpr", "thr"]},
        {"run1": {"train.json": rows, "test.json": rows}},
    )
    assert [s.label for s in figure.series] == [
        "run1 train.json:tpr",
        "run1 test.json:tpr",
        "run1 test.json:thr",
    ]
    assert figure.series[2] == plots.Series("run1 test.json:thr", [0.0, 1.0], [1.0, 0.0])
    assert (figure.x, figure.y, figure.kind) == ("fpr", "thr", "line")


def test_a_confusion_plot_keeps_classes_and_draws_a_matrix(tmp_path: Path) -> None:
    rows = [{"actual": a, "predicted": p} for a, p in ("00", "01", "11", "11", "10")]
    figure = plots.spec_figure(
        "CM",
        "confusion",
        {"cm.json": "actual"},
        {"cm.json": ["predicted"]},
        {"r": {"cm.json": rows}},
    )
    assert figure.kind == "confusion"
    assert figure.series == [plots.Series("r", list("00111"), list("01110"))]
    image = plots.Image("importance", "r", b"\x89PNG\r\n\x1a\nrest", ".png")
    written = plots.render([figure], tmp_path, "t", [image])
    assert [p.name for p in written] == ["00-CM.png", "01-importance-r.png", "index.html"]
    assert written[0].stat().st_size > 5000
    assert written[1].read_bytes() == image.data
    assert (tmp_path / "index.html").read_text().count("data:image/png;base64,") == 2
