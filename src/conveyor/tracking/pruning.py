"""Pruning a tuning trial from inside its stage: an intermediate value logged with a step is
reported to the trial's Optuna study, and a trial the pruner gives up on stops at once.

``conveyor tune`` sets the environment below for each trial's run; elsewhere nothing happens
and Optuna is never imported.
"""

from __future__ import annotations

import os
from typing import Any

from conveyor.foundation.errors import ConveyorError

METRIC_ENV = "CONVEYOR_PRUNE_METRIC"  # the key whose stepped values are reported
TRIAL_ENV = "CONVEYOR_TRIAL_ID"  # Optuna's id of the trial
STORAGE_ENV = "CONVEYOR_TUNE_STORAGE"  # the study's database (a SQLAlchemy URL)
STUDY_ENV = "CONVEYOR_TUNE_STUDY"  # the study's name


class TrialPruned(ConveyorError):
    """Raised by ``log_metric`` when the study's pruner stops this trial."""


_reporter: Any = None


def report(value: float, step: int) -> None:
    """Report to the trial; raise :class:`TrialPruned` if the pruner says stop."""
    global _reporter
    if _reporter is None:
        env = os.environ
        _reporter = _Reporter(env[STORAGE_ENV], env[STUDY_ENV], int(env[TRIAL_ENV]))
    _reporter.report(value, step)


class _Reporter:
    def __init__(self, url: str, study: str, trial_id: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        kwargs: dict[str, Any] = (
            {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        )
        self.storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        self.study = optuna.load_study(study_name=study, storage=self.storage)
        self.trial = optuna.trial.Trial(self.study, trial_id)

    def report(self, value: float, step: int) -> None:
        import optuna

        self.trial.report(value, step)
        if self.trial.should_prune():
            self.storage.set_trial_state_values(
                self.trial._trial_id, optuna.trial.TrialState.PRUNED
            )
            raise TrialPruned(f"trial pruned at step {step} ({value})")
