"""The prediction log: sampled requests with their inputs, predictions and the model version
that answered, keyed by request id, so that monitoring can join them with feedback later.

Records are JSON lines in segments ``<folder>/<model>/<start>-<pid>-<n>.jsonl``. A segment is
written as ``.jsonl.part`` and renamed when it is full, old enough, or the server stops; a
reader takes finished segments whole and, from a ``.part`` a killed server left, every complete
line (never a half-written one).

A record is made into its JSON line when the request is answered (a few microseconds for a few
rows; rows the request sent as JSON and the model took unchanged can be passed as an
``orjson.Fragment`` of that text, and cost nothing more), and written by a background thread, a
batch a second. Serializing in that thread instead would make it contend for the GIL with the
event loop, holding up requests for milliseconds at a time.

Sampling is decided by the request id (a hash, not a coin), so every replica logs the same
requests and a client can tell whether a request was logged.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

_SEGMENTS = itertools.count()
SEGMENT_RECORDS = 50_000
SEGMENT_SECONDS = 300.0


def sampled(request_id: str, rate: float) -> bool:
    if rate >= 1:
        return True
    return rate > 0 and zlib.crc32(request_id.encode()) < rate * 2**32


class PredictionLog:
    def __init__(self, folder: Path, *, rate: float = 1.0, interval: float = 1.0) -> None:
        self.folder = folder
        self.rate = rate
        self.interval = interval
        self._pending: deque[tuple[str, bytes]] = deque()  # (model, JSON line with its \n)
        self._files: dict[str, _Segment] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-predlog", daemon=True)
        self._thread.start()

    def record(
        self, request_id: str, model: str, version: str, endpoint: str, inputs: Any, outputs: Any
    ) -> None:
        if sampled(request_id, self.rate):
            record = {
                "id": request_id,
                "ts": round(time.time(), 6),
                "model": model,
                "version": version,
                "endpoint": endpoint,
                "inputs": _jsonable(inputs),
                "outputs": _jsonable(outputs),
            }
            self._pending.append((model, orjson.dumps(record, _default, _OPTIONS)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()
        for segment in self._files.values():
            segment.finish()
        self._files.clear()

    def flush(self) -> None:
        lines: dict[str, list[bytes]] = {}
        while self._pending:
            model, line = self._pending.popleft()
            lines.setdefault(model, []).append(line)
        for model, batch in lines.items():
            segment = self._files.get(model)
            if segment is None or segment.full():
                if segment is not None:
                    segment.finish()
                segment = self._files[model] = _Segment(self.folder / _safe(model))
            segment.write(batch)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()


class _Segment:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.started))
        # Several segments may start within one second: the counter keeps their names apart.
        self.path = folder / f"{stamp}-{os.getpid()}-{next(_SEGMENTS):04d}.jsonl"
        self.part = self.path.with_name(self.path.name + ".part")
        self.count = 0
        self.file = open(self.part, "ab")  # noqa: SIM115 - held open across writes

    def write(self, lines: list[bytes]) -> None:
        self.file.writelines(lines)  # not joined first: a copy of megabytes would hold the GIL
        self.file.flush()
        self.count += len(lines)

    def full(self) -> bool:
        return self.count >= SEGMENT_RECORDS or time.time() - self.started >= SEGMENT_SECONDS

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.part, self.path)


def read(folder: Path, model: str | None = None) -> Iterator[dict[str, Any]]:
    """Every record logged under ``folder`` (one model's, or all), oldest segment first."""
    folders = (
        [folder / _safe(model)] if model else sorted(p for p in folder.glob("*") if p.is_dir())
    )
    for sub in folders:
        for path in sorted(sub.glob("*.jsonl*")):
            if path.suffix not in (".jsonl", ".part"):
                continue
            data = path.read_bytes()
            if path.suffix == ".part":
                data = data[: data.rfind(b"\n") + 1]  # a killed writer's last line may be cut
            for line in data.splitlines():
                if line:
                    yield orjson.loads(line)


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if getattr(value, "dtype", None) is not None and value.dtype == object:
        return value.tolist()
    if hasattr(value, "to_numpy"):
        return value.to_numpy().tolist()
    if hasattr(value, "dtype") and not value.flags.c_contiguous:
        import numpy as np

        return np.ascontiguousarray(value)
    return value


def _default(value: Any) -> Any:
    """What orjson cannot write itself (a dtype it does not know, say): a list, or text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _safe(model: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in model)
