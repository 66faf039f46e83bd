"""One loaded model version: the URI it was named by, the version loaded now, its batcher, and
the hot swap that replaces that version without dropping a request.

A new version is loaded in a background thread (:meth:`Served.load`) and swapped in with one
assignment. A batch already running keeps the version it started with, and the next batch takes
the new one: no request is dropped or answered by a half-loaded model. Which version to load is
not decided here but by :mod:`conveyor.serve.follow`, from the desired state in the store.

:class:`Served` is a :class:`~conveyor.serve.predictor.Predictor`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import ConveyorError
from conveyor.registry import package
from conveyor.serve import payload
from conveyor.serve.batching import Batcher
from conveyor.serve.errors import ModelFailed, NotReady, RequestError, TooLarge
from conveyor.serve.metrics import Metrics
from conveyor.serve.predictor import Prediction, Role, Version

if TYPE_CHECKING:
    from conveyor.registry.records import ModelVersion


class Served:
    def __init__(
        self,
        uri: str,
        root: Path | None,
        metrics: Metrics,
        *,
        role: Role = "stable",
        max_batch_size: int = 64,
        max_latency_ms: float = 0,
        max_rows: int = 100_000,
    ) -> None:
        self.uri = uri
        self.root = root
        self.metrics = metrics
        self.role: Role = role
        self.registered = uri.startswith("models:/")
        self.name = _name(uri)
        self.follows_alias = self.registered and "@" in uri
        self.max_rows = max_rows
        self.current: Version | None = None
        self.error: str | None = None  # why the last load failed, until one works
        self.batcher = Batcher(
            self.run_batch, max_batch_size=max_batch_size, max_latency_ms=max_latency_ms
        )

    @property
    def version(self) -> str | None:
        current = self.current
        return current.number if current is not None else None

    @property
    def ready(self) -> bool:
        return self.current is not None

    def require(self) -> Version:
        current = self.current
        if current is None:
            why = f": {self.error}" if self.error else " (still loading)"
            raise NotReady(f"model {self.name} is not ready{why}")
        return current

    # -- loading (blocking: run in a thread) -------------------------------------------------

    def load(self, record: ModelVersion | None) -> Version:
        """Load the version ``record`` names (a registry row, or None for the package folder
        the URI names) and swap it in; on failure keep serving what was loaded before, and
        :attr:`error` says why."""
        try:
            version = self._load(record)
        except Exception as exc:
            self.error = reason(exc)
            raise
        self.error = None
        self.swap(version)
        return version

    async def fetch(self, record: ModelVersion | None) -> Version:
        """:meth:`load` in a thread, awaited."""
        return await asyncio.to_thread(self.load, record)

    def _load(self, record: ModelVersion | None) -> Version:
        if record is None or not self.registered:
            return Version.local(self.uri, package.load(self.uri))
        from conveyor.data.workspace import Workspace
        from conveyor.registry.stored import materialize

        assert self.root is not None
        with Workspace(self.root) as ws:
            folder = materialize(ws, record)
        return Version(str(record.version), package.load(folder), record.package)

    def swap(self, version: Version) -> None:
        self.current = version
        self.metrics.serving(self.uri, self.name, version.number, self.role)

    # -- predicting --------------------------------------------------------------------------

    async def predict(
        self, data: Any, *, timeout: float | None = None, key: str | None = None
    ) -> tuple[Any, Prediction]:
        """``data`` checked against the served version's signature, and its prediction (made
        in a batch with other requests')."""
        current = self.require()
        checked = payload.conform(current.model.signature, data)
        rows = payload.rows(checked)
        if rows == 0:
            raise RequestError("the request holds no rows")
        if rows > self.max_rows:
            raise TooLarge(
                f"the request holds {rows} rows; this server takes at most {self.max_rows}",
                hint="split it, or start the server with a larger --max-rows",
            )
        flight = self.metrics.in_flight
        flight[self.name] += 1
        try:
            result: Prediction = await self.batcher.submit(checked, rows, timeout=timeout)
        finally:
            flight[self.name] -= 1
        return checked, result

    def close(self) -> None:
        self.batcher.close()

    def run_batch(self, payloads: Sequence[Any], sizes: Sequence[int]) -> list[Any]:
        """The predictions of checked payloads (``sizes`` rows each) made together: a
        :class:`Prediction` each, or the RequestError of the one that failed (each retried
        alone when the batch fails). Blocking."""
        current = self.current
        assert current is not None
        try:
            merged = payload.merge(current.model.signature, payloads)
            parts = payload.split(current.model.model.predict(merged), sizes)
        except Exception as exc:
            if len(payloads) > 1:  # find the bad request: each alone
                return [self.run_batch([p], [n])[0] for p, n in zip(payloads, sizes, strict=True)]
            return [_failure(self.name, exc)]
        role = self.role
        self.metrics.batch(self.name, current.number, sum(sizes), role)
        return [Prediction(current.number, part, role) for part in parts]


def reason(exc: Exception) -> str:
    """Why loading or calling a model failed, in one line."""
    if isinstance(exc, ConveyorError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"  # a broken package: a missing module, a corrupt file...


def _failure(name: str, exc: Exception) -> RequestError:
    if isinstance(exc, (ValueError, TypeError)):  # the values passed the signature, not the model
        return RequestError(f"model {name} refused the input: {exc}")
    return ModelFailed(f"model {name} failed: {type(exc).__name__}: {exc}")


def _name(uri: str) -> str:
    if uri.startswith("models:/"):
        from conveyor.registry.uris import parse_uri

        return parse_uri(uri).name
    return str(package.read_manifest(Path(uri)).get("name") or Path(uri).name)
