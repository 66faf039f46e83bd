"""Adaptive batching: concurrent requests to one model are predicted together.

Requests queue while the model is busy; when it is free, everything queued (up to
``max_batch_size`` rows) becomes the next batch at once. So one client alone waits for nothing,
and many clients share each call of the model instead of queueing behind each other.
``max_latency_ms`` > 0 also holds a batch open up to that long for more rows to join (worth it
only for models whose cost hardly grows with the rows).

A slow model runs in one thread of its own, so the event loop goes on reading requests (and
timing them out) while it works. A fast one runs on the event loop itself: handing a batch to a
thread and back costs as much as a sub-millisecond model, and under the GIL the loop would wait
for the model's thread anyway. The batcher times every call (a moving average for each size of
batch) and runs a batch inline only when that says it takes at most ``INLINE_SECONDS``; until it
has timed a call, and whenever a batch would take longer, the thread runs it.

A request that times out or whose client left is dropped from the queue; a batch that fails is
retried request by request, so one bad input fails alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from conveyor.serve.errors import TimedOut

# Given the payloads of one batch, the result of each (an exception for those that failed).
RunBatch = Callable[[Sequence[Any], Sequence[int]], list[Any]]

# The longest a batch may hold the event loop: a model thread holds the GIL for up to
# sys.getswitchinterval() (5 ms) at a time, so the loop waits about as long either way.
INLINE_SECONDS = 0.002
_WEIGHT = 0.2  # of the latest call in a moving average
_MAX_JUMP = 2.0  # the most a call counts for, as a multiple of the average


class Job(NamedTuple):
    payload: Any
    rows: int
    future: asyncio.Future[Any]
    queued: float


class Cost:
    """How long the model takes for so many rows: a moving average of seconds per call for each
    size class (1, 2-3, 4-7, ... rows), a call counting at most twice the average. A size not
    seen yet is guessed from the nearest smaller one seen, doubled per class (as if the cost
    grew with the rows), else from the nearest larger.
    """

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}  # rows.bit_length() -> seconds per call

    def estimate(self, rows: int) -> float | None:
        """Seconds a call with ``rows`` rows will take; None before any call was timed."""
        size = rows.bit_length()
        known = self.seconds.get(size)
        if known is not None:
            return known
        smaller = [s for s in self.seconds if s < size]
        if smaller:
            nearest = max(smaller)
            return self.seconds[nearest] * 2.0 ** (size - nearest)
        larger = [s for s in self.seconds if s > size]
        return self.seconds[min(larger)] if larger else None

    def observe(self, rows: int, seconds: float) -> None:
        size = rows.bit_length()
        before = self.seconds.get(size)
        if before is None:
            self.seconds[size] = seconds
            return
        # A call counts at most twice the average: one the machine held up (another process
        # ran) must not send the next batches to the thread, and a model that really became
        # slower still doubles its estimate every few calls.
        seconds = min(seconds, _MAX_JUMP * before)
        self.seconds[size] = before + _WEIGHT * (seconds - before)


class Batcher:
    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch_size: int = 64,
        max_latency_ms: float = 0,
        inline_seconds: float = INLINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.run = run
        self.clock = clock  # when requests queued and batches fill up: a test's own
        self.max_batch_size = max(1, max_batch_size)
        self.max_latency = max(0.0, max_latency_ms) / 1000
        self.inline_seconds = inline_seconds
        # > 0 for work nobody waits on (a shadow's copies): each batch first waits this long for
        # more rows, in one sleep, so that the copies of 20 ms of traffic cost the model about
        # one call. It then runs as any batch: on the loop when fast (an answer waits for it at
        # most INLINE_SECONDS), else on the model's thread.
        self.hold = 0.0
        self.cost = Cost()
        self._queue: deque[Job] = deque()
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="conveyor-predict")

    async def submit(self, payload: Any, rows: int, *, timeout: float | None = None) -> Any:
        """The result for ``payload``; TimedOut after ``timeout`` seconds (queued or running)."""
        loop = asyncio.get_running_loop()
        job = Job(payload, rows, loop.create_future(), self.clock())
        self._queue.append(job)
        if not self._busy:
            self._busy = True
            self._task = loop.create_task(self._drain())
        timer = loop.call_later(timeout, _expire, job.future, timeout) if timeout else None
        try:
            return await job.future
        finally:
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.hold:
                    await asyncio.sleep(self.hold)
                elif self.max_latency:
                    await self._fill()
                batch = self._take()
                if not batch:
                    continue
                payloads = [j.payload for j in batch]
                sizes = [j.rows for j in batch]
                rows = sum(sizes)
                estimate = self.cost.estimate(rows)
                inline = estimate is not None and estimate <= self.inline_seconds
                try:
                    if inline:
                        results = self._timed(payloads, sizes, rows)
                    else:
                        results = await loop.run_in_executor(
                            self._pool, self._timed, payloads, sizes, rows
                        )
                except Exception as exc:  # the runner failed as a whole: every job hears of it
                    results = [exc] * len(batch)
                for job, result in zip(batch, results, strict=True):
                    if job.future.done():
                        continue
                    if isinstance(result, BaseException):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)
                if inline and self._queue:
                    await asyncio.sleep(0)  # the loop's other work goes first, then the rest
        finally:
            self._busy = False

    def _timed(self, payloads: Sequence[Any], sizes: Sequence[int], rows: int) -> list[Any]:
        started = time.perf_counter()
        try:
            return self.run(payloads, sizes)
        finally:
            self.cost.observe(rows, time.perf_counter() - started)

    async def _fill(self) -> None:
        deadline = self._queue[0].queued + self.max_latency
        while sum(j.rows for j in self._queue) < self.max_batch_size:
            left = deadline - self.clock()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.0005))

    def _take(self) -> list[Job]:
        """The next batch: queued jobs in order while they fit (the first always goes)."""
        batch: list[Job] = []
        size = 0
        while self._queue:
            job = self._queue[0]
            if job.future.done():  # timed out or cancelled while queued
                self._queue.popleft()
                continue
            if batch and size + job.rows > self.max_batch_size:
                break
            batch.append(self._queue.popleft())
            size += job.rows
        return batch


def _expire(future: asyncio.Future[Any], timeout: float) -> None:
    if not future.done():
        future.set_exception(
            TimedOut(
                f"the prediction took longer than {timeout:g} s",
                hint="the server's limit is --timeout; send fewer rows or raise it",
            )
        )
