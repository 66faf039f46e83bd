"""The registry's records as values: a model version, an alias move, a model's summary.

Plain frozen dataclasses, importable without the metadata store. ``ModelVersion`` still answers
``version["package"]`` for the callers written when records were dicts; new code reads its
attributes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
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

    # A record read like the dict it used to be: kept while callers move to the attributes.
    def __getitem__(self, key: str) -> Any:
        if key not in _VERSION_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in _VERSION_FIELDS else default

    def keys(self) -> list[str]:
        return list(_VERSION_FIELDS)


_VERSION_FIELDS = tuple(f.name for f in fields(ModelVersion))


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
