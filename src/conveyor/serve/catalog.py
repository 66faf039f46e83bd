"""The predictors a server holds, found by model name and version as a request names them."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.serve.errors import NotFound, NotReady
from conveyor.serve.predictor import Predictor
from conveyor.serve.router import Router


class Catalog:
    """Predictors by model name, in the order the server was given them. Several may share a
    name (two versions of one model served side by side): a request naming a version gets the
    predictor answering with it; one naming none gets the first. A router answers for both its
    versions: a request naming the candidate's version gets the candidate alone."""

    def __init__(self, predictors: Sequence[Predictor]) -> None:
        self.predictors = list(predictors)
        self.by_name: dict[str, list[Predictor]] = {}
        for predictor in self.predictors:
            self.by_name.setdefault(predictor.name, []).append(predictor)

    @property
    def default(self) -> Predictor | None:
        """The predictor that answers where a protocol names no model (MLflow's /invocations)."""
        return self.predictors[0] if self.predictors else None

    @property
    def ready(self) -> bool:
        return all(p.ready for p in self.predictors)

    def __contains__(self, name: str) -> bool:
        return name in self.by_name

    def find(self, name: str, version: str | None = None) -> Predictor:
        candidates = self.by_name.get(name)
        if not candidates:
            raise NotFound(
                f"no model {name!r} is served here",
                hint=f"served: {', '.join(self.by_name) or 'none'}",
            )
        if version is None:
            return candidates[0]
        found = _named(candidates, version)
        if found is not None:
            return found
        serving = [v for v in (v for p in candidates for v in _versions(p)) if v is not None]
        if not serving:
            raise NotReady(f"model {name} is not ready")
        raise NotFound(
            f"model {name} has no version {version} served here",
            hint=f"serving version(s): {', '.join(serving)}",
        )

    def answering(self, name: str, version: str | None = None) -> Predictor:
        """The predictor a request for a served ``name`` (and ``version``) is counted against,
        even when it fails: the one answering with that version, else the name's first."""
        candidates = self.by_name[name]
        if version is not None:
            found = _named(candidates, version)
            if found is not None:
                return found
        return candidates[0]


def _named(predictors: Sequence[Predictor], version: str) -> Predictor | None:
    for predictor in predictors:
        if predictor.version == version:
            return predictor
    for predictor in predictors:
        if isinstance(predictor, Router):
            member = predictor.at(version)
            if member is not None:
                return member
    return None


def _versions(predictor: Predictor) -> list[str | None]:
    if isinstance(predictor, Router):
        candidate = predictor.candidate
        return [predictor.version, candidate.version if candidate is not None else None]
    return [predictor.version]
