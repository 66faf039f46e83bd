"""DVC's top-level sections, parsed from real YAML text (pure: no files)."""

from __future__ import annotations

import pytest

from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.pipeline import sections
from conveyor.pipeline.stage import Plot


def _normal(path: str, where: str, what: str) -> str:
    if path.startswith("/"):
        raise ConfigError(f"{where}: {what} {path} is absolute")
    return path.removeprefix("./")


def _parse(text: str) -> tuple[list[str], list[Plot], list[ConfigError]]:
    doc = yamlio.load(text, "conveyor.yaml")
    errors: list[ConfigError] = []
    metrics, plots = sections.top_level(doc.data, doc, _normal, errors)
    return metrics, plots, errors


def test_every_plot_shape_dvc_writes() -> None:
    metrics, plots, errors = _parse(
        """\
metrics: [eval/metrics.json]
plots:
  - ./eval/loss.tsv
  - ROC:
      template: simple
      x: fpr
      y: {eval/roc/train.json: tpr, eval/roc/test.json: [tpr, fpr]}
  - eval/prc.json: {x: recall, y: precision, title: PR}
  - Joined:
      x: {a.csv: step, b.csv: epoch}
      y: {a.csv: loss, b.csv: loss}
"""
    )
    assert errors == [] and metrics == ["eval/metrics.json"]
    assert plots == [
        Plot("eval/loss.tsv", ("eval/loss.tsv",), {"eval/loss.tsv": ""}, {"eval/loss.tsv": []}),
        Plot(
            "ROC",
            ("eval/roc/train.json", "eval/roc/test.json"),
            {"eval/roc/train.json": "fpr", "eval/roc/test.json": "fpr"},
            {"eval/roc/train.json": ["tpr"], "eval/roc/test.json": ["tpr", "fpr"]},
            "simple",
        ),
        Plot(
            "eval/prc.json",
            ("eval/prc.json",),
            {"eval/prc.json": "recall"},
            {"eval/prc.json": ["precision"]},
            title="PR",
        ),
        Plot(
            "Joined",
            ("a.csv", "b.csv"),
            {"a.csv": "step", "b.csv": "epoch"},
            {"a.csv": ["loss"], "b.csv": ["loss"]},
        ),
    ]


def test_each_bad_entry_is_its_own_error_with_its_line() -> None:
    _, plots, errors = _parse(
        """\
plots:
  - good.csv
  - Bad: {x: a, y: b, colour: red}
  - {A: null, B: null}
  - Worse: {y: 3}
artifacts:
  model: {path: m.pkl, typ: model}
  data: {type: dataset}
"""
    )
    assert [p.id for p in plots] == ["good.csv"]
    assert [e.message for e in errors] == [
        "conveyor.yaml:3: plot 'Bad': unknown key 'colour'",
        "conveyor.yaml:4: each entry of 'plots' is a path or one {id: {x: ..., y: ...}}",
        "conveyor.yaml:5: plot 'Worse': 'y' is a column, a list of columns, or {file: column}",
        "conveyor.yaml:7: artifact 'model': unknown key 'typ'",
        "conveyor.yaml:8: artifact 'data' needs a 'path'",
    ]
    assert errors[3].hint == "did you mean 'type'?"


def test_metrics_must_be_a_list_of_paths() -> None:
    with pytest.raises(ConfigError, match="'metrics' is a list of metrics files"):
        sections.metrics_files({"a": 1}, yamlio.load("metrics: {a: 1}\n", "c"), _normal)


def test_every_mistake_says_what_to_write_instead() -> None:
    """Each error carries a hint (the CLI prints it under the error): the shape DVC writes."""
    _, _, errors = _parse(
        """\
plots:
  - {A: null, B: null}
  - Worse: {y: 3}
  - Two: {x: [a, b], y: {f.csv: c}}
  - Odd: {title: 3}
  - Empty: {y: {}}
  - Props: [x]
artifacts:
  data: {type: dataset}
"""
    )
    assert len(errors) == 7
    assert all(e.hint for e in errors), [e.message for e in errors if not e.hint]
    assert "ROC: {x: fpr, y: {eval/roc.json: tpr}}" in errors[0].hint
    assert errors[3].hint == 'quote it: title: "..."'
    _, _, errors = _parse("plots: {a: 1}\nartifacts: [m.pkl]\n")
    assert len(errors) == 2 and all(e.hint for e in errors)
    with pytest.raises(ConfigError) as info:
        sections.metrics_files({"a": 1}, yamlio.load("metrics: {a: 1}\n", "c"), _normal)
    assert info.value.hint == "write it as a YAML list: metrics: [metrics/eval.json]"
