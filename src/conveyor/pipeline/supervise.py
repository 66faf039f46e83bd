"""Run one stage command so that nothing of it outlives its runner.

The executor starts this file as a script (``python -I -S supervise.py /bin/sh -c CMD``): it
imports only the standard library, so the interpreter starts without site-packages. It runs in
a session of its own, so a signal sent to the runner's process group (a CI cancel) does not
reach it, and it starts the command in its process group, with stdin from ``/dev/null`` and its
own stdout and stderr (the runner's pipes), which it then lets go of.

Its stdin is a pipe from the runner and says what the runner wants:

- a byte: the runner has read all the output; once the command has exited, whatever of the
  stage is still running (a daemon that closed its output) is stopped (SIGTERM, then SIGKILL
  after a second) and the supervisor exits with the command's status (killing itself with the
  same signal when the command was killed), so the runner sees the command's own exit code;
- end of file without that byte: the runner is gone (killed, even by SIGKILL, which nothing can
  catch; its pipe closes with its last descriptor): every process of the stage is SIGKILLed.

It makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``), so a process of the stage whose
parent exits is re-parented to it, not to init: it finds all of them, including those that left
the process group with ``setsid``. Watching a pipe rather than ``PR_SET_PDEATHSIG`` also avoids
the death signal's catch: it fires when the *thread* that forked exits, not the process.
SIGTERM (the pool's stop) is passed on to every process of the stage.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal
import sys
import time

_PR_SET_CHILD_SUBREAPER = 36
_GRACE = 1.0  # seconds a leftover process gets between SIGTERM and SIGKILL
_CANNOT_START = 127
_RUNNER_GONE = 128 + signal.SIGKILL.value


def descendants(pid: int) -> list[int]:
    """The live (not zombie) processes below ``pid``, parents before children."""
    children: dict[int, list[tuple[int, bool]]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone while we looked
        children.setdefault(int(fields[1]), []).append((int(name), fields[0] == b"Z"))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child, zombie in children.get(todo.pop(), []):
            if not zombie:
                found.append(child)
            todo.append(child)  # a zombie's children are still running
    return found


class Supervisor:
    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.pid = os.getpid()
        self.child = 0
        self.status: int | None = None  # the command's wait status, once it has exited
        self.terminate = False

    def run(self) -> int:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # Linux >= 3.4; best effort elsewhere
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select() up
        signal.signal(signal.SIGTERM, self._on_term)
        try:
            self.child = os.posix_spawn(
                self.command[0],
                self.command,
                os.environ,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)],
                # Python ignores SIGPIPE and SIGXFSZ; a command must get the defaults back.
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGCHLD),
            )
        except OSError as exc:
            print(f"cannot run {self.command[-1]!r}: {exc.strerror or exc}", file=sys.stderr)
            return _CANNOT_START
        # Let go of the runner's output pipes: it reads until every writer has closed them.
        null = os.open("/dev/null", os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
        drained = False  # the runner has read all the output
        while True:
            self._reap()
            if drained and self.status is not None:
                break
            if self.terminate:
                self.terminate = False
                self._signal_all(signal.SIGTERM)
            ready, _, _ = select.select([0, wake_r], [], [], 1.0)
            if wake_r in ready:
                os.read(wake_r, 512)
            if 0 in ready:
                if not os.read(0, 1):
                    self._kill_all()
                    return _RUNNER_GONE
                drained = True
        self._stop_leftovers()
        return self._exit_status()

    def _on_term(self, _signum: int, _frame: object) -> None:
        self.terminate = True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child:
                self.status = status

    def _has_children(self) -> bool:
        # A subreaper with no child has no descendant: an orphan would have become its child.
        self._reap()
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return True

    def _signal_all(self, signum: int) -> list[int]:
        live = descendants(self.pid)
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return live

    def _kill_all(self) -> None:
        # A process that forks while we look leaves an orphan we find on the next round.
        while self._signal_all(signal.SIGKILL):
            time.sleep(0.005)
            self._reap()
        self._reap()

    def _stop_leftovers(self) -> None:
        if not self._has_children():  # the usual case, told without reading all of /proc
            return
        if not self._signal_all(signal.SIGTERM):
            return
        deadline = time.monotonic() + _GRACE
        while time.monotonic() < deadline:
            self._reap()
            if not descendants(self.pid):
                return
            time.sleep(0.01)
        self._kill_all()

    def _exit_status(self) -> int:
        status = self.status or 0
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            # Die of the same signal, so the runner sees -N as it would have without us.
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if signum != signal.SIGKILL:
                signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
            os.kill(self.pid, signum)
            return 128 + signum
        return os.waitstatus_to_exitcode(status)


def main() -> int:
    return Supervisor(sys.argv[1:]).run()


if __name__ == "__main__":
    sys.exit(main())
