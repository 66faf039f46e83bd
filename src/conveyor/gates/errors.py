"""The errors of the gates. A check that cannot be evaluated raises one of these; the engine
(:func:`conveyor.gates.evaluate.evaluate`) turns it into that check's ``error`` verdict, with
the message and the hint, so one broken check never hides the others.

    ConveyorError
    └── GateError             a check cannot be evaluated here (no test runner was given)
        ├── CheckConfigError  the check's own settings are missing or wrong: column:, expect:,
        │                     data:, score:, gates.model, gates.predictions
        ├── CheckInputError   what the check reads lacks what it needs: a column, rows, unique
        │                     ids, the same labels on both sides, a metric that is a number
        └── NoBaseline        the baseline a check names does not exist yet (a first model):
                              comparisons with it are skipped, not failed
"""

from __future__ import annotations

from conveyor.foundation.errors import ConveyorError


class GateError(ConveyorError):
    """A gate check cannot be evaluated."""


class CheckConfigError(GateError):
    """A check's settings in conveyor.yaml are missing or wrong."""


class CheckInputError(GateError):
    """A predictions table, data file, examples file or metric a check reads cannot be used."""


class NoBaseline(GateError):
    """The baseline a check names does not exist yet (a first model): change checks skip."""
