"""The gates: section: every mistake in it reported at once, each with its line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.validation import ConfigErrors
from conveyor.gates import config

BAD = """\
gates:
  model: 3
  resamples: 0
  checks:
    - metric: eval.auc
      min: high
      severity: maybe
    - metrc: x
    - tests: pytest
      junti: x
"""


def test_every_mistake_in_the_section_is_reported_in_line_order() -> None:
    doc = yamlio.load(BAD, "conveyor.yaml")
    with pytest.raises(ConfigErrors) as info:
        config.parse(doc.data["gates"], doc)
    parts = info.value.parts
    assert [p.message.split(": ", 1)[0] for p in parts] == [
        "conveyor.yaml:2",
        "conveyor.yaml:3",
        "conveyor.yaml:6",
        "conveyor.yaml:7",
        "conveyor.yaml:8",
        "conveyor.yaml:10",
    ]
    assert parts[0].message == "conveyor.yaml:2: gates.model is a name, not 3"
    assert parts[1].message == "conveyor.yaml:3: gates.resamples: a whole number from 1, not 0"
    assert parts[3].message == "conveyor.yaml:7: severity is block or warn, not 'maybe'"
    assert parts[4].hint == "did you mean 'metric'?"
    assert parts[5].message == "conveyor.yaml:10: a tests check has no key 'junti'"
    assert parts[5].hint == "did you mean 'junit'?"


def test_load_reads_the_section_through_the_project_loader(tmp_path: Path) -> None:
    assert config.load(tmp_path) == config.Gates()
    (tmp_path / "conveyor.yaml").write_text("gates:\n  - metric: eval.auc\n    min: 0.9\n")
    gates = config.load(tmp_path)
    assert [(c.kind, c.name, c.where) for c in gates.checks] == [
        ("metric", "eval.auc >= 0.9", "conveyor.yaml:2")
    ]
    (tmp_path / "conveyor.yaml").write_text("gates:\n  - metric: eval.auc\n    mni: 0.9\n")
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path)
    assert info.value.message == "conveyor.yaml:3: a metric check has no key 'mni'"
