"""Adaptive batching on a real event loop: concurrent requests share a model call, a bad one
fails alone, and a slow one times out without holding the others."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from conveyor.serve.batching import Batcher
from conveyor.serve.errors import TimedOut


class Recorder:
    """A model that doubles numbers, refuses negatives, and records each call's batch."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[list[int]] = []
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, payloads: Sequence[Any], sizes: Sequence[int]) -> list[Any]:
        self.gate.wait()
        self.calls.append(list(payloads))
        time.sleep(self.delay)
        if any(p < 0 for p in payloads):
            if len(payloads) > 1:
                return [self([p], [1])[0] for p in payloads]
            return [ValueError(f"negative: {payloads[0]}")]
        return [p * 2 for p in payloads]


def test_one_client_alone_is_predicted_at_once() -> None:
    model = Recorder()

    async def main() -> list[int]:
        batcher = Batcher(model, max_batch_size=8)
        return [await batcher.submit(i, 1) for i in range(3)]

    assert asyncio.run(main()) == [0, 2, 4]
    assert model.calls == [[0], [1], [2]]


def test_requests_queued_while_the_model_works_become_one_batch() -> None:
    model = Recorder()
    model.gate.clear()  # the first call blocks until every request is queued

    async def main() -> list[int]:
        batcher = Batcher(model, max_batch_size=4)
        tasks = [asyncio.ensure_future(batcher.submit(i, 1)) for i in range(7)]
        await asyncio.sleep(0.05)
        model.gate.set()
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(main()) == [0, 2, 4, 6, 8, 10, 12]
    assert model.calls == [[0, 1, 2, 3], [4, 5, 6]]  # max_batch_size rows per call


def test_a_bad_request_fails_alone() -> None:
    model = Recorder()
    model.gate.clear()

    async def main() -> list[Any]:
        batcher = Batcher(model, max_batch_size=8)
        tasks = [asyncio.ensure_future(batcher.submit(i, 1)) for i in (1, 2, -3, 4)]
        await asyncio.sleep(0.05)
        model.gate.set()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    first, second, bad, fourth = asyncio.run(main())
    assert (first, second, fourth) == (2, 4, 8)
    assert isinstance(bad, ValueError) and "negative: -3" in str(bad)


def test_a_timed_out_request_answers_with_504_and_others_go_on() -> None:
    model = Recorder(delay=0.3)

    async def main() -> tuple[Any, Any]:
        batcher = Batcher(model, max_batch_size=1)
        slow = asyncio.ensure_future(batcher.submit(1, 1, timeout=0.05))
        fine = asyncio.ensure_future(batcher.submit(2, 1, timeout=5))
        return await asyncio.gather(slow, fine, return_exceptions=True)

    slow, fine = asyncio.run(main())
    assert isinstance(slow, TimedOut) and slow.status == 504 and fine == 4


class Ticks:
    """A clock that moves 1 ms each time it is read: a batcher that waited out its deadline
    would read it past the deadline, one that did not stops reading it well before."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def test_max_latency_holds_the_batch_open_for_more_rows() -> None:
    clock = Ticks()
    model = Recorder()
    called_at: list[float] = []

    def timed(payloads: Sequence[Any], sizes: Sequence[int]) -> list[Any]:
        called_at.append(clock.now)
        return model(payloads, sizes)

    async def main() -> None:
        batcher = Batcher(timed, max_batch_size=3, max_latency_ms=200, clock=clock)
        first = asyncio.ensure_future(batcher.submit(1, 1))
        for _ in range(10):  # the batcher starts and holds the batch open
            await asyncio.sleep(0)
        rest = [asyncio.ensure_future(batcher.submit(i, 1)) for i in (2, 3)]
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    assert model.calls == [[1, 2, 3]]
    assert called_at[0] < 0.2  # full before the deadline: no waiting it out


@pytest.mark.parametrize("size", [1, 5])
def test_a_request_larger_than_the_batch_still_goes_alone(size: int) -> None:
    model = Recorder()

    async def main() -> int:
        return int(await Batcher(model, max_batch_size=2).submit(size, size))

    assert asyncio.run(main()) == size * 2


def test_a_fast_model_runs_on_the_loop_once_timed_and_a_slow_one_in_its_thread() -> None:
    threads: list[str] = []

    def fast(payloads: Sequence[Any], sizes: Sequence[int]) -> list[Any]:
        threads.append(threading.current_thread().name)
        return list(payloads)

    recorder = Recorder(delay=0.01)
    slow_threads: list[str] = []

    def slow(payloads: Sequence[Any], sizes: Sequence[int]) -> list[Any]:
        slow_threads.append(threading.current_thread().name)
        return recorder(payloads, sizes)

    async def main() -> None:
        batcher = Batcher(fast)
        for i in range(3):
            assert await batcher.submit(i, 1) == i
        timed = Batcher(slow, inline_seconds=0.002)  # one batcher: the second call is timed
        assert await timed.submit(1, 1) == 2
        assert await timed.submit(1, 1) == 2

    asyncio.run(main())
    main_thread = threading.main_thread().name
    assert threads[0] != main_thread  # not timed yet: the thread
    assert threads[1:] == [main_thread, main_thread]
    assert len(slow_threads) == 2 and main_thread not in slow_threads  # timed slow: the thread


def test_the_cost_of_an_unseen_batch_size_is_guessed_up_from_smaller_ones() -> None:
    from conveyor.serve.batching import Cost

    cost = Cost()
    assert cost.estimate(1) is None
    cost.observe(1, 0.001)
    assert cost.estimate(1) == 0.001
    assert cost.estimate(1000) == pytest.approx(0.001 * 2**9)  # 1,000 rows: 9 classes up
    cost.observe(1000, 0.002)
    assert cost.estimate(1000) == 0.002
    assert cost.estimate(600) == 0.002  # the same class
    cost.observe(1, 0.002)
    assert cost.estimate(1) == pytest.approx(0.0012)  # a moving average


def test_one_call_the_machine_held_up_does_not_move_the_estimate_far() -> None:
    from conveyor.serve.batching import Cost

    cost = Cost()
    cost.observe(1, 0.001)
    cost.observe(1, 0.050)  # preempted: counted as 0.002
    assert cost.estimate(1) == pytest.approx(0.0012)
    for _ in range(30):  # a model that really became slower
        cost.observe(1, 0.050)
    assert cost.estimate(1) == pytest.approx(0.050, rel=0.05)


def test_held_work_waits_for_more_rows_in_one_call() -> None:
    """A shadow's copies (hold > 0): arriving one by one, a few milliseconds apart, they share
    one call of the model."""
    model = Recorder()

    async def main() -> list[int]:
        batcher = Batcher(model, max_batch_size=64)
        batcher.hold = 0.05
        tasks = []
        for i in range(1, 6):  # one at a time, as requests' copies come
            tasks.append(asyncio.ensure_future(batcher.submit(i, 1)))
            await asyncio.sleep(0.002)
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(main()) == [2, 4, 6, 8, 10]
    assert model.calls == [[1, 2, 3, 4, 5]]
