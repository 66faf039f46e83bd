"""Start a command one process away from the caller: ``python -I -S detach.py CMD ARGS...``.

A Ray worker that exits (a cancelled task, a driver that died) has its direct children
SIGKILLed by Ray (``kill_child_processes_on_worker_exit``). A stage's supervisor
(:mod:`conveyor.pipeline.supervise`) killed that way could not kill the stage, which would run
on as an orphan. Started through this script instead, the supervisor is a grandchild: Ray kills
this process, the supervisor sees its pipe from the dead worker close, and kills every process
of the stage. The supervisor inherits stdin, stdout and stderr, so the caller talks to it as if
it were its child; this process waits for it and ends as it ended (its exit code or its signal).
Standard library only, run without site-packages: it starts in milliseconds.
"""

from __future__ import annotations

import os
import resource
import signal
import sys


def main(argv: list[str]) -> int:
    child = os.fork()
    if child == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    # Let go of the pipes: the caller reads the output until every writer has closed it.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    # Signals for the stage reach the supervisor through the process group, not through us.
    for ignored in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(ignored, signal.SIG_IGN)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
