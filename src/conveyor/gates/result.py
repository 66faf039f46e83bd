"""One check's verdict, with the value, the baseline and the interval that decided it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    name: str
    kind: str
    severity: str
    verdict: str
    value: Any = None
    baseline: Any = None
    interval: tuple[float, float] | None = None
    n: int | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocks(self) -> bool:
        return self.severity == "block" and self.verdict in ("fail", "inconclusive", "error")

    @property
    def shown(self) -> str:
        """The verdict as a reader sees it: a failed warn-only check is a warning."""
        if self.severity == "warn" and self.verdict in ("fail", "inconclusive", "error"):
            return f"warn ({self.verdict})"
        return self.verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "severity": self.severity,
            "verdict": self.verdict, "blocks": self.blocks, "value": self.value,
            "baseline": self.baseline,
            "interval": list(self.interval) if self.interval else None,
            "n": self.n, "detail": self.detail, "notes": self.notes, "slices": self.slices,
        }  # fmt: skip
