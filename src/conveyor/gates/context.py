"""What the gate engine is handed: the candidate (its metrics, predictions, model, tests) and
the baselines a ``vs:`` names. The CLI or a flow in ``ci`` builds one from the workspace, a run,
the registry or git revisions; tests build one from plain values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Baseline:
    label: str  # what it is, for reports: "production = classifier version 3"
    metrics: dict[str, Any]
    predictions: Callable[[str], Any]  # path -> its predictions table (a DataFrame)


@dataclass
class Context:
    root: Path
    metrics: dict[str, Any]
    predictions: Callable[[str], Any]  # the candidate's predictions table at a path
    baseline: Callable[[str], Baseline]  # `vs:` -> Baseline, or raises gates.errors.NoBaseline
    model: Callable[[], Any] | None = None  # the candidate model (for behaviour and budgets)
    model_folder: Path | None = None
    run_tests: Callable[[str, str | None], Any] | None = None  # command -> TestCounts
