"""The registry's records as values: a model version, an alias move, a model's summary.

Plain frozen dataclasses, importable without the metadata store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its package (the tree hash ``<oid>.tree`` of the package folder
    in the object cache), flavor, the run that made it, when and by whom, and its lineage."""

    name: str
    version: int
    package: str
    flavor: str
    run_id: str | None
    created: float
    user: str
    lineage: dict[str, Any]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON output shows it (and as the store's row reads)."""
        return asdict(self)


@dataclass(frozen=True)
class AliasMove:
    """One entry of an alias's append-only history: ``version`` None is a deletion,
    ``previous`` None a first setting."""

    alias: str
    version: int | None
    previous: int | None
    user: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelSummary:
    """A registered model at a glance: its latest version, how many, and its aliases."""

    name: str
    latest: int | None
    versions: int
    aliases: dict[str, int]
