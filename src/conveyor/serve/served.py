"""A model the server serves: the URI it was named by, the version loaded now, its batcher, and
the hot reload that follows an alias.

A URI naming an alias (``models:/classifier@production``) is looked up again every few seconds;
when the alias has moved, the new version is loaded in a background thread and swapped in with
one assignment. A batch already running keeps the version it started with, and the next batch
takes the new one: no request is dropped or answered by a half-loaded model.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from conveyor.foundation.errors import ConveyorError
from conveyor.registry import package
from conveyor.serve import payload
from conveyor.serve.batching import Batcher
from conveyor.serve.errors import ModelFailed, NotReady, RequestError, TooLarge
from conveyor.serve.metrics import Metrics

if TYPE_CHECKING:
    from conveyor.registry.records import ModelVersion


class Version(NamedTuple):
    number: str  # the registry's version, or "local" for a package folder
    model: package.Model
    package: str  # the package hash, or its folder

    @property
    def output(self) -> str:
        sig = self.model.signature
        return sig.outputs[0].name if sig and sig.outputs else "output"


class Prediction(NamedTuple):
    version: str
    outputs: Any  # this request's rows of the model's output


class Served:
    def __init__(
        self,
        uri: str,
        root: Path | None,
        metrics: Metrics,
        *,
        max_batch_size: int = 64,
        max_latency_ms: float = 0,
        max_rows: int = 100_000,
    ) -> None:
        self.uri = uri
        self.root = root
        self.metrics = metrics
        self.registered = uri.startswith("models:/")
        self.name = _name(uri)
        self.follows_alias = self.registered and "@" in uri
        self.max_rows = max_rows
        self.current: Version | None = None
        self.error: str | None = None
        self.batcher = Batcher(
            self._run, max_batch_size=max_batch_size, max_latency_ms=max_latency_ms
        )
        self._lock = threading.Lock()

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

    def load(self) -> None:
        """Load what the URI names now; on failure keep serving what was loaded before."""
        with self._lock:
            try:
                version = self._resolve()
                number = "local" if version is None else str(version.version)
                if self.current is None or number != self.current.number:
                    self._swap(self._load(version))
                self.error = None
            except ConveyorError as exc:
                self.error = exc.message
                raise

    def reload(self) -> bool:
        """Follow a moved alias; True when a new version was swapped in."""
        if not self.follows_alias or self.current is None:
            return False  # the first load is not a reload
        before = self.current.number
        try:
            self.load()
        except Exception:
            self.metrics.reloads[(self.name, "failed")] += 1
            raise
        changed = self.current is not None and self.current.number != before
        if changed:
            self.metrics.reloads[(self.name, "loaded")] += 1
        return changed

    def _resolve(self) -> ModelVersion | None:
        if not self.registered:
            return None
        from conveyor.registry.stored import resolve

        assert self.root is not None
        return resolve(self.root, self.uri)

    def _load(self, version: ModelVersion | None) -> Version:
        if version is None:
            return Version("local", package.load(self.uri), str(Path(self.uri).resolve()))
        from conveyor.data.workspace import Workspace
        from conveyor.registry.stored import materialize

        assert self.root is not None
        with Workspace(self.root) as ws:
            folder = materialize(ws, version)
        return Version(str(version.version), package.load(folder), version.package)

    def _swap(self, version: Version) -> None:
        self.current = version
        self.metrics.models[self.name] = (version.number, self.uri)

    # -- predicting --------------------------------------------------------------------------

    async def predict(self, data: Any, *, timeout: float | None = None) -> tuple[Any, Prediction]:
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

    def _run(self, payloads: Sequence[Any], sizes: Sequence[int]) -> list[Any]:
        current = self.current
        assert current is not None
        try:
            merged = payload.merge(current.model.signature, payloads)
            parts = payload.split(current.model.model.predict(merged), sizes)
        except Exception as exc:
            if len(payloads) > 1:  # find the bad request: each alone
                return [self._run([p], [n])[0] for p, n in zip(payloads, sizes, strict=True)]
            return [_failure(self.name, exc)]
        self.metrics.batch(self.name, current.number, sum(sizes))
        return [Prediction(current.number, part) for part in parts]


def _failure(name: str, exc: Exception) -> RequestError:
    if isinstance(exc, (ValueError, TypeError)):  # the values passed the signature, not the model
        return RequestError(f"model {name} refused the input: {exc}")
    return ModelFailed(f"model {name} failed: {type(exc).__name__}: {exc}")


def _name(uri: str) -> str:
    if uri.startswith("models:/"):
        from conveyor.registry.uris import parse_uri

        return parse_uri(uri).name
    return str(package.read_manifest(Path(uri)).get("name") or Path(uri).name)
