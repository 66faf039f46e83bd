"""The prediction log's format and its reader: what the server's writer
(:class:`conveyor.serve.predlog.PredictionLog`) leaves on disk, and how monitoring reads it back.

Layout: one folder per model, ``<folder>/<model>/``, holding JSON-lines segments
(:mod:`conveyor.monitor.segments`: ``<start>-<pid>-<n>.jsonl``, ``.jsonl.part`` while written;
a reader takes finished segments whole and, from a ``.part`` a killed server left, every
complete line, never a half-written one).

One record per line (:class:`Record`): the request id, the time it was answered, the model, the
version that answered, the endpoint, and the request's inputs and the model's outputs as JSON.

Sampling is decided by the request id (a hash, not a coin), so every replica logs the same
requests and a client can tell whether a request was logged.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

from conveyor.monitor import segments
from conveyor.monitor.segments import PART as PART
from conveyor.monitor.segments import SUFFIX as SUFFIX
from conveyor.monitor.segments import segment_name as segment_name


class Record(TypedDict):
    id: str
    ts: float  # seconds since the epoch, to the microsecond
    model: str
    version: str
    endpoint: str  # "infer" (OIP v2) or "invocations" (MLflow scoring)
    inputs: Any
    outputs: Any


def record(
    request_id: str, model: str, version: str, endpoint: str, inputs: Any, outputs: Any
) -> Record:
    """A record of a request answered now."""
    return {
        "id": request_id,
        "ts": round(time.time(), 6),
        "model": model,
        "version": version,
        "endpoint": endpoint,
        "inputs": inputs,
        "outputs": outputs,
    }


def sampled(request_id: str, rate: float) -> bool:
    """Whether the request with this id is logged at ``rate`` (0 to 1)."""
    if rate >= 1:
        return True
    return rate > 0 and zlib.crc32(request_id.encode()) < rate * 2**32


def model_folder(folder: Path, model: str) -> Path:
    """Where one model's segments are: its name made safe for any file system."""
    return folder / "".join(c if c.isalnum() or c in "._-" else "_" for c in model)


def read(folder: Path, model: str | None = None) -> Iterator[dict[str, Any]]:
    """Every record logged under ``folder`` (one model's, or all), oldest segment first."""
    folders = (
        [model_folder(folder, model)]
        if model
        else sorted(p for p in folder.glob("*") if p.is_dir())
    )
    for sub in folders:
        for path in segments.files(sub):
            yield from segments.records(segments.complete(path, path.read_bytes()))
