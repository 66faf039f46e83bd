"""foundation.priority: work that yields to a server's workers."""

from __future__ import annotations

import os
import threading

import pytest

from conveyor.foundation.priority import below_serving


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_monitors_thread_gives_way_to_the_workers() -> None:
    seen: list[int] = []
    before = os.sched_getscheduler(0)

    def work() -> None:
        assert below_serving() == "idle"
        seen.append(os.sched_getscheduler(threading.get_native_id()))

        inner = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
        inner.start()  # a thread it starts inherits the policy
        inner.join()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [os.SCHED_IDLE, os.SCHED_IDLE]
    assert os.sched_getscheduler(0) == before  # its own thread only
