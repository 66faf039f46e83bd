"""The gate engine on plain values: thresholds, changes against a baseline (absolute, relative,
zero and negative baselines, none yet), significance (a real improvement, a tie, too few
examples), slices, the project's tests, and the reports (JUnit read back by junitparser)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from junitparser import JUnitXml

from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.gates import config, report
from conveyor.gates.evaluate import Baseline, Context, NoBaseline, Result, evaluate


def gates(text: str) -> config.Gates:
    doc = yamlio.load(text, "conveyor.yaml")
    return config.parse(doc.data["gates"], doc)


def predictions(n: int, accuracy: float, seed: int, groups: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.random.default_rng(99).integers(0, 2, n)  # the same examples every time
    right = rng.random(n) < accuracy
    prediction = np.where(right, label, 1 - label)
    score = np.clip(np.where(prediction == 1, 0.75, 0.25) + rng.normal(0, 0.1, n), 0, 1)
    table = pd.DataFrame({"id": np.arange(n), "label": label, "score": score,
                          "prediction": prediction})  # fmt: skip
    if groups:
        table["group"] = np.where(np.arange(n) % 4 == 0, "rare", "common")
    return table


def context(
    metrics: dict[str, Any],
    table: pd.DataFrame | None = None,
    base: Baseline | None = None,
    tmp: Path = Path("."),
) -> Context:
    def baseline(vs: str) -> Baseline:
        if base is None:
            raise NoBaseline(f"classifier has no alias {vs!r}")
        return base

    return Context(root=tmp, metrics=metrics, predictions=lambda _p: table, baseline=baseline)


def one(text: str, ctx: Context) -> Result:
    (result,) = evaluate(gates(text), ctx)
    return result


def test_thresholds() -> None:
    text = "gates:\n  - metric: eval.auc\n    min: 0.9\n"
    assert one(text, context({"eval.auc": 0.93})).verdict == "pass"
    failed = one(text, context({"eval.auc": 0.85}))
    assert failed.verdict == "fail" and failed.blocks and "0.85 < min 0.9" in failed.detail
    missing = one(text, context({"eval.f1": 0.9, "train.auc": 0.9}))
    assert missing.verdict == "error" and "no metric 'eval.auc'" in missing.detail
    warn = one("gates:\n  - metric: eval.auc\n    max: 0.5\n    severity: warn\n",
               context({"eval.auc": 0.93}))  # fmt: skip
    assert warn.verdict == "fail" and not warn.blocks and warn.shown == "warn (fail)"


def test_changes_against_a_baseline() -> None:
    base = Baseline(
        "production = clf version 1", {"eval.loss": -2.0, "eval.auc": 0.9, "z": 0.0}, lambda p: None
    )
    absolute = "gates:\n  - metric: eval.auc\n    vs: production\n    min_change: -0.01\n"
    assert one(absolute, context({"eval.auc": 0.895}, base=base)).verdict == "pass"
    result = one(absolute, context({"eval.auc": 0.88}, base=base))
    assert result.verdict == "fail" and result.baseline == 0.9 and "change -0.02" in result.detail
    # relative to |baseline|: -2 -> -1 went up by 50%, not down
    relative = (
        "gates:\n  - metric: eval.loss\n    vs: production\n    relative: true\n"
        "    min_change: 0.4\n"
    )
    assert one(relative, context({"eval.loss": -1.0}, base=base)).verdict == "pass"
    assert one(relative, context({"eval.loss": -3.0}, base=base)).verdict == "fail"
    zero = "gates:\n  - metric: z\n    vs: production\n    relative: true\n    max_change: 0.1\n"
    result = one(zero, context({"z": 0.5}, base=base))
    assert result.verdict == "error" and "baseline is 0" in result.detail


def test_no_baseline_yet_skips_changes_but_keeps_thresholds() -> None:
    text = "gates:\n  - metric: eval.auc\n    min: 0.9\n    vs: production\n    min_change: 0\n"
    result = one(text, context({"eval.auc": 0.95}))
    assert result.verdict == "pass" and any("no baseline yet" in n for n in result.notes)
    only_change = "gates:\n  - metric: eval.auc\n    vs: production\n    min_change: 0\n"
    assert one(only_change, context({"eval.auc": 0.95})).verdict == "skipped"


SIGNIFICANCE = """\
gates:
  predictions: eval/predictions.csv
  checks:
    - metric: eval.accuracy
      vs: production
      min_change: 0
      confidence: 0.95
"""


def test_significance_passes_a_real_improvement_and_not_a_tie() -> None:
    champion = predictions(2000, 0.80, seed=1)
    better = predictions(2000, 0.88, seed=2)
    base = Baseline("production", {"eval.accuracy": 0.8}, lambda p: champion)
    result = one(SIGNIFICANCE, context({"eval.accuracy": 0.88}, better, base))
    assert result.verdict == "pass" and result.n == 2000
    assert result.interval is not None and result.interval[0] > 0
    assert any("McNemar" in n for n in result.notes)
    tie = predictions(2000, 0.80, seed=3)  # as good, by a different route
    result = one(SIGNIFICANCE, context({"eval.accuracy": 0.8}, tie, base))
    assert result.verdict == "fail" and result.interval[0] < 0 < result.interval[1]  # type: ignore[index]


def test_too_few_paired_examples_is_inconclusive_and_blocks() -> None:
    champion = predictions(20, 0.5, seed=1)
    better = predictions(20, 1.0, seed=2)
    base = Baseline("production", {}, lambda p: champion)
    result = one(SIGNIFICANCE, context({"eval.accuracy": 1.0}, better, base))
    assert (
        result.verdict == "inconclusive" and result.blocks and "20 paired examples" in result.detail
    )


def test_auc_significance_and_different_labels_refused() -> None:
    text = SIGNIFICANCE.replace("eval.accuracy", "eval.auc")
    champion = predictions(1500, 0.75, seed=1)
    better = predictions(1500, 0.9, seed=2)
    base = Baseline("production", {}, lambda p: champion)
    result = one(text, context({"eval.auc": 0.9}, better, base))
    assert result.verdict == "pass" and any("DeLong" in n for n in result.notes)
    twice = pd.concat([better, better.head(3)])
    result = one(text, context({"eval.auc": 0.9}, twice, base))
    assert result.verdict == "error" and "one id to several rows" in result.detail
    other = better.assign(label=1 - better["label"])
    result = one(text, context({"eval.auc": 0.9}, other, base))
    assert result.verdict == "error" and "different labels" in result.detail


def test_slices_hold_each_slice_to_the_gate_and_show_the_worst() -> None:
    table = predictions(800, 0.9, seed=5, groups=True)
    rare = table["group"] == "rare"
    table.loc[rare, "prediction"] = 1 - table.loc[rare, "label"]  # always wrong on "rare"
    text = ("gates:\n  predictions: p.csv\n  checks:\n    - metric: eval.accuracy\n"
            "      min: 0.8\n      slice_by: group\n")  # fmt: skip
    result = one(text, context({}, table))
    assert result.verdict == "fail" and "worst slice group=rare" in result.detail
    assert {s["slice"]: s["verdict"] for s in result.slices} == {
        "group=common": "pass", "group=rare": "fail"
    }  # fmt: skip
    small = one(
        text.replace("slice_by: group", "slice_by: group\n      min_size: 500"), context({}, table)
    )
    assert small.verdict == "pass" and [s["verdict"] for s in small.slices] == ["pass", "skipped"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gates:\n  - metrc: eval.auc\n    min: 1\n", "did you mean 'metric'"),
        ("gates:\n  - metric: eval.auc\n    min: high\n", "conveyor.yaml:3: min: a number"),
        ("gates:\n  - metric: eval.auc\n    vs: production\n", "needs min_change or max_change"),
        ("gates:\n  - metric: eval.auc\n    min_change: 0\n", "needs vs"),
        ("gates:\n  - metric: eval.auc\n", "nothing to check"),
        ("gates:\n  - metric: eval.auc\n    min: 1\n    severity: maybe\n", "block or warn"),
        ("gates:\n  checks:\n    - data: x.csv\n", "schema: PATH"),
        ("gates:\n  cheks: []\n", "did you mean 'checks'"),
        ("gates:\n  - metric: a\n    min: 1\n  - metric: a\n    min: 1\n", "two checks are named"),
    ],
)
def test_config_errors_name_the_line_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        gates(text)
    assert message in str(caught.value)


def test_reports_json_markdown_and_junit(tmp_path: Path) -> None:
    results = [
        Result("auc floor", "metric", "block", "pass", value=0.93, detail="0.93 >= min 0.9"),
        Result("f1 vs production", "metric", "block", "fail", value=0.8, baseline=0.85,
               interval=(-0.07, -0.02), n=500, detail="change -0.05"),
        Result("latency", "budget", "warn", "fail", detail="over budget"),
        Result("accuracy vs main", "metric", "block", "skipped", detail="no baseline"),
        Result("schema", "data", "block", "error", detail="schema.yaml does not exist"),
    ]  # fmt: skip
    report.write(tmp_path, results, {"candidate": "the workspace"})
    doc = json.loads((tmp_path / "gates.json").read_text())
    assert doc["verdict"] == "fail" and [g["blocks"] for g in doc["gates"]] == [
        False, True, False, False, True
    ]  # fmt: skip
    md = (tmp_path / "gates.md").read_text()
    assert "| f1 vs production | 0.8 | 0.85 | [-0.07, -0.02] | 500 | ❌ fail |" in md
    assert "warn (fail) (warn only)" in md
    xml = JUnitXml.fromfile(str(tmp_path / "gates.junit.xml"))
    cases = {case.name: case for suite in xml for case in suite}
    assert set(cases) == {r.name for r in results}
    assert cases["auc floor"].is_passed and cases["latency"].is_passed
    assert not cases["f1 vs production"].is_passed and cases["accuracy vs main"].is_skipped
    kinds = {name: type(c.result[0]).__name__ for name, c in cases.items() if c.result}
    assert kinds == {
        "f1 vs production": "Failure",
        "accuracy vs main": "Skipped",
        "schema": "Error",
    }
    counts = report.junit_counts((tmp_path / "gates.junit.xml").read_text(), 0)
    assert (counts.total, counts.failed, counts.errors, counts.skipped) == (5, 1, 1, 1)


@pytest.mark.parametrize("confidence", ["\n      confidence: 0.95", ""])
def test_slices_against_a_baseline(confidence: str) -> None:
    champion = predictions(1200, 0.9, seed=7, groups=True)
    candidate = champion.copy()
    rare = candidate["group"] == "rare"
    candidate.loc[rare, "prediction"] = 1 - candidate.loc[rare, "label"]  # broken on "rare"
    base = Baseline("production", {}, lambda p: champion)
    text = (
        "gates:\n  predictions: p.csv\n  checks:\n    - metric: eval.accuracy\n"
        f"      vs: production\n      min_change: -0.02\n      slice_by: group{confidence}\n"
    )
    result = one(text, context({}, candidate, base))
    verdicts = {s["slice"]: s["verdict"] for s in result.slices}
    assert verdicts == {"group=common": "pass", "group=rare": "fail"}
    assert result.verdict == "fail" and "worst slice group=rare" in result.detail
    if confidence:
        assert result.interval is not None and result.interval[1] < -0.02


def test_a_sliced_change_check_without_a_baseline_is_skipped_not_blocking() -> None:
    text = (
        "gates:\n  predictions: p.csv\n  checks:\n    - metric: eval.accuracy\n"
        "      vs: production\n      min_change: 0\n      slice_by: group\n"
    )
    result = one(text, context({}, predictions(200, 0.9, seed=1, groups=True)))
    assert result.verdict == "skipped" and not result.blocks
    assert any("no baseline yet" in n for n in result.notes)


def test_the_gates_confidence_applies_to_every_comparison() -> None:
    champion = predictions(2000, 0.80, seed=1)
    tie = predictions(2000, 0.80, seed=3)
    base = Baseline("production", {"eval.accuracy": 0.8}, lambda p: champion)
    text = SIGNIFICANCE.replace("      confidence: 0.95\n", "").replace(
        "  checks:", "  confidence: 0.9\n  checks:"
    )
    result = one(text, context({"eval.accuracy": 0.8}, tie, base))
    assert result.interval is not None and "90% interval" in result.detail
    with pytest.raises(ConfigError, match=r"gates\.confidence"):
        gates(text.replace("confidence: 0.9", "confidence: 9"))
