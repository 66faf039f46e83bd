"""Processor priority for work that must never slow a server's answers down.

    below_serving()   # this thread, and the threads it starts from now on

Linux gives each thread a scheduling policy of its own, inherited by the threads (and
processes) it starts; call it before any library starts threads of its own (numpy's BLAS).
"""

from __future__ import annotations

import contextlib
import os
import threading

NICE = 19  # where SCHED_IDLE is missing: the lowest nice value


def below_serving() -> str:
    """Run the calling thread under SCHED_IDLE (Linux): only on processor time the server's
    workers leave, a worker that wakes taking the core back at once (a thread merely at nice 19
    keeps it for the rest of its slice). Elsewhere at nice ``NICE``; else as it is. What was
    set: ``"idle"``, ``"nice"`` or ``""``. Without privilege it cannot be raised again: on cores
    a load keeps busy all the time, such work falls behind."""
    me = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(me, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, me, NICE)
        return "nice"
    return ""
