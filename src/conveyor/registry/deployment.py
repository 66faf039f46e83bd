"""An environment's deployment record: what it serves now and how far a rollout has come.

The record is the desired state a model server follows (which versions, which split) and the
state the rollout controller advances; it lives in the metadata store next to the aliases, one
row per environment, and every change to it is written together with an event (see
:mod:`conveyor.tracking.events`). It sits in the registry layer so that a server, which may not
import the controller, can read it without SQLAlchemy, as it reads aliases.

Values only here: reading and writing the row are in the store's modules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

# idle: only stable serves; progressing / paused: a candidate gets ``weight`` percent (or a
# copy, in shadow mode); the others are where a rollout ended, with stable at 100 %.
Status = Literal["idle", "progressing", "paused", "promoted", "aborted", "rolled_back"]
STATUSES: tuple[Status, ...] = (
    "idle",
    "progressing",
    "paused",
    "promoted",
    "aborted",
    "rolled_back",
)
# How traffic reaches the candidate while a rollout is on.
Mode = Literal["canary", "ab", "shadow", "blue_green"]
MODES: tuple[Mode, ...] = ("canary", "ab", "shadow", "blue_green")
ACTIVE: frozenset[str] = frozenset({"progressing", "paused"})
# The kinds of an environment's events (subject ``deploy:<env>``): every decision about a
# rollout is one (see :mod:`conveyor.deploy.decide`); webhooks name them without "rollout.".
EVENT_KINDS: tuple[str, ...] = (
    "rollout.started", "rollout.step", "rollout.analysis", "rollout.paused", "rollout.resumed",
    "rollout.promoted", "rollout.aborted", "rollout.rolled_back", "rollout.verdict",
)  # fmt: skip
# What a ``rollout.analysis`` event's checks may measure: the checks of ``deploy:`` and ``ab``,
# the A/B test's verdict; and the verdicts a check gives. A server exports no other values.
CHECK_METRICS: tuple[str, ...] = (
    "error_rate", "latency_p50", "latency_p99", "accuracy", "prediction_drift", "agreement", "ab",
)  # fmt: skip
VERDICTS: tuple[str, ...] = ("pass", "fail", "inconclusive")


@dataclass(frozen=True)
class Deployment:
    """One environment's record. Versions are the registry's numbers of ``model``."""

    env: str
    model: str
    stable: int | None  # None before the first deploy
    candidate: int | None = None  # set while a rollout is on, and kept after an abort
    mode: Mode = "canary"
    status: Status = "idle"
    step: int = 0  # index of the current step of the strategy
    weight: float = 0.0  # percent of requests the candidate answers (0 to 100)
    sticky: str = ""  # A/B: the request key that keeps a user on one side (header:x-user-id)
    started: float = 0.0  # clock value: the rollout's start
    step_started: float = 0.0  # clock value: the current step's start (pauses count from it)
    failures: int = 0  # failed analyses in a row
    previous: int | None = None  # the stable version before the last promotion (rollback)
    message: str = ""  # why it is where it is, for people
    revision: int = 0  # bumped by every write: a server applies a record once

    @property
    def active(self) -> bool:
        """A rollout is on: the candidate is loaded and gets traffic (or a copy)."""
        return self.status in ACTIVE and self.candidate is not None

    def split(self) -> dict[int, float]:
        """Version -> percent of requests it answers (a shadow's copy is not an answer)."""
        if self.stable is None:
            return {} if self.candidate is None else {self.candidate: 100.0}
        if not self.active or self.mode == "shadow" or self.candidate == self.stable:
            return {self.stable: 100.0}
        assert self.candidate is not None
        return {self.stable: 100.0 - self.weight, self.candidate: self.weight}

    def but(self, **changes: object) -> Deployment:
        """A copy with ``changes`` and the next revision."""
        return replace(self, **changes, revision=self.revision + 1)  # type: ignore[arg-type]
