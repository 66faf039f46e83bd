"""The prediction log's writer: sampled requests with their inputs, predictions and the model
version that answered, keyed by request id, so that monitoring can join them with feedback later.
The format and its reader are :mod:`conveyor.monitor.predlog`'s (monitoring reads what the server
writes, without importing the server).

A record is made into its JSON line when the request is answered (a few microseconds for a few
rows; rows the request sent as JSON and the model took unchanged can be passed as an
``orjson.Fragment`` of that text, and cost nothing more), and written by a background thread, a
batch a second. Serializing in that thread instead would make it contend for the GIL with the
event loop, holding up requests for milliseconds at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from conveyor.monitor.predlog import model_folder, record, sampled
from conveyor.monitor.segments import Segment

SEGMENT_RECORDS = 50_000
SEGMENT_SECONDS = 300.0


class PredictionLog:
    """Records waiting to be written are held up to ``buffer_bytes``; past that (the folder
    is gone, unwritable, or the disk full, and the writer cannot keep up) a record is dropped
    and counted in :attr:`dropped`, never held without bound. A write that fails drops its
    records too, and the next one, a second later, tries a new segment: logging resumes by
    itself when the folder can be written again. ``notify`` hears once when writing stops
    working and once when it works again, not once per record."""

    def __init__(
        self,
        folder: Path,
        *,
        rate: float = 1.0,
        interval: float = 1.0,
        buffer_bytes: int = 64 * 2**20,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.folder = folder
        self.rate = rate
        self.interval = interval
        self.buffer_bytes = buffer_bytes
        self.notify = notify or (lambda _message: None)
        self.dropped = 0  # records never written
        self.failing: str | None = None  # why the last write failed, until one works
        self._pending: list[tuple[str, bytes]] = []  # (model, JSON line with its \n)
        self._size = 0  # bytes in _pending
        self._lock = threading.Lock()  # _pending and _size: the loop adds, the writer takes
        self._files: dict[str, Segment] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-predlog", daemon=True)
        self._thread.start()

    @property
    def pending_bytes(self) -> int:
        return self._size

    def record(
        self, request_id: str, model: str, version: str, endpoint: str, inputs: Any, outputs: Any
    ) -> None:
        if not sampled(request_id, self.rate):
            return
        if self._size >= self.buffer_bytes:  # full: spare the serialization too
            self._drop(1)
            return
        made = record(request_id, model, version, endpoint, _jsonable(inputs), _jsonable(outputs))
        line = orjson.dumps(made, _default, _OPTIONS)
        with self._lock:
            if self._size + len(line) > self.buffer_bytes:
                self.dropped += 1  # under the lock already
                return
            self._pending.append((model, line))
            self._size += len(line)
        if self._size >= self.buffer_bytes // 4:
            self._wake.set()  # write now rather than hold a second's worth of large records

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.flush()
        for segment in self._files.values():
            segment.finish()
        self._files.clear()

    def flush(self) -> int:
        """Write what is pending; the number of bytes taken."""
        with self._lock:
            taken, self._pending, self._size = self._pending, [], 0
        size = sum(len(line) for _, line in taken)
        lines: dict[str, list[bytes]] = {}
        for model, line in taken:
            lines.setdefault(model, []).append(line)
        del taken
        for model, batch in lines.items():
            written = 0
            try:
                segment = self._segment(model)
                written = segment.count
                for line in batch:  # not joined first: a copy of megabytes would hold the GIL
                    segment.write(line)
            except OSError as exc:
                if model in self._files:
                    written = self._files.pop(model).abandon() - written
                self._drop(len(batch) - written)
                if self.failing is None:
                    self.failing = f"{exc.strerror or exc}: {exc.filename or self.folder}"
                    self.notify(
                        f"prediction log: cannot write ({self.failing}); dropping records "
                        "(conveyor_prediction_log_dropped_total counts them) and trying again "
                        "every second"
                    )
                continue
            if self.failing is not None:
                self.failing = None
                self.notify(f"prediction log: writing to {self.folder} again")
        return size

    def _drop(self, records: int) -> None:
        with self._lock:  # the event loop and the writer both count
            self.dropped += records

    def _segment(self, model: str) -> Segment:
        segment = self._files.get(model)
        if segment is not None and (segment.full() or segment.gone()):
            self._files.pop(model).finish()
            segment = None
        if segment is None:
            # Not durable: no sync per batch (only the machine's crash loses what was written).
            segment = self._files[model] = Segment(
                model_folder(self.folder, model),
                records=SEGMENT_RECORDS,
                seconds=SEGMENT_SECONDS,
            )
        return segment

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self._stop.is_set() and self.flush() >= _TRIM_BYTES:
                _trim()


_TRIM_BYTES = 2**20


def _trim() -> None:
    """Hand the memory of the records just written (and of their requests) back to the system.
    glibc keeps freed blocks of the sizes a 1,000-row request makes in its heaps, so under a
    long load of them the server's resident memory would stay at its highest; trimming after
    each large write holds it near the steady state (``bench/serving_memory.py``). Elsewhere
    (musl, macOS), nothing to do."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        import ctypes

        try:
            _MALLOC_TRIM = ctypes.CDLL(None).malloc_trim
        except (AttributeError, OSError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)  # ctypes lets go of the GIL meanwhile: requests go on


_MALLOC_TRIM: Any = None


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
