"""Run stage commands as real processes, several at once: the :class:`Executor` contract.

A :class:`Job` is one stage: its shell commands run one after another with ``/bin/sh -c`` in
``cwd`` with exactly ``env`` (nothing is inherited) and stdin from ``/dev/null``; the first
non-zero exit ends the job. Every output line goes, as it arrives, to the caller's :class:`Sink`
(from reader threads, so sinks must be thread-safe and must not raise) and to the job's log file,
which is overwritten and starts with a header naming the stage and the time.

Each job ends in exactly one :class:`Outcome` with ``code`` 0 on success, the failing command's
exit code, ``-N`` when killed by signal N, or 127 when a command or the log could not be started
(the reason is then in ``tail``). Nothing raises out of a worker thread.

:class:`LocalPool` runs at most ``jobs`` jobs at a time; extra jobs wait in a FIFO queue. Each
command gets its own process group, so :meth:`LocalPool.stop` reaches grandchildren too: it drops
the queue (those jobs never start and never report), sends SIGTERM to every running group, SIGKILL
to those left after ``grace`` seconds, and waits for them. Call ``stop`` in a ``finally``.

Nothing of a command outlives the pool's process, however that process ends (a SIGKILL to it or
to its process group, which is how CI cancels a job): each command runs under a small supervisor
(:mod:`conveyor.pipeline.supervise`) that kills all of it when this process's pipe to it closes.
A command is done when it has exited and its output is closed; a process it leaves behind that
closed its output (a daemon) is stopped then, so the stage's outs are not written after it.

    pool = LocalPool(jobs=2, sink=my_sink)
    try:
        pool.submit(Job("train", ("python train.py",), root, os.environ, root / "train.log"))
        while pool.busy:
            for outcome in pool.wait():
                ...
    finally:
        pool.stop()

``submit``, ``wait``, ``stop`` and ``busy`` are for one (the caller's) thread only.

An executor that runs stages on other machines (:mod:`conveyor.pipeline.ray_executor`) uses the
job's ``definition`` and ``inputs`` (what to check out there, by hash) and reports each success
with ``Outcome.outs``: the outs' hashes, their objects already in this project's cache; the
runner then checks them out instead of storing what the workspace holds.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, NamedTuple, Protocol, TextIO

from conveyor.pipeline.stage import Meta, Stage

TAIL_LINES = 20
CANNOT_START = 127  # what sh itself returns for a command it cannot find
# Run as a script with -I -S: no site-packages to scan, so it starts in a few milliseconds.
_SUPERVISOR = (sys.executable, "-I", "-S", str(Path(__file__).with_name("supervise.py")))
_DETACH = (sys.executable, "-I", "-S", str(Path(__file__).with_name("detach.py")))


class Job(NamedTuple):
    stage: str
    commands: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    log: Path
    # For an executor that runs the stage elsewhere (Ray): the stage as declared, and what its
    # working copy needs checked out there by hash (deps, and persistent outs as they are now).
    # The local pool needs neither.
    definition: Stage | None = None
    inputs: tuple[tuple[str, Meta], ...] = ()


class Outcome(NamedTuple):
    stage: str
    code: int
    duration: float
    tail: str
    # None: the outs are in the workspace, to be stored (the local pool). Otherwise the stage
    # ran elsewhere and these are its outs, already in the object cache, to be checked out.
    outs: dict[str, Meta] | None = None


class Sink(Protocol):
    def line(self, stage: str, text: str, err: bool) -> None: ...


class Executor(Protocol):
    def submit(self, job: Job) -> None: ...

    def wait(self) -> list[Outcome]: ...

    def stop(self, grace: float = 5.0) -> None: ...

    @property
    def busy(self) -> int: ...


class _Output:
    """One job's lines, fanned out to the sink and the log; keeps the stderr tail."""

    def __init__(self, stage: str, sink: Sink, log: TextIO) -> None:
        self._stage = stage
        self._sink = sink
        self._log = log
        self._lock = threading.Lock()  # two reader threads share the log
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def line(self, text: str, err: bool) -> None:
        self._sink.line(self._stage, text, err)
        with self._lock:
            self._log.write(text + "\n")
            self._log.flush()
            if err:
                self.tail.append(text)

    def pump(self, pipe: IO[bytes], err: bool) -> None:
        for raw in iter(pipe.readline, b""):
            text = raw.decode("utf-8", errors="replace")
            self.line(text.removesuffix("\n").removesuffix("\r"), err)


class LocalPool:
    """Runs jobs in worker threads, at most ``jobs`` at once, FIFO; see the module docstring."""

    def __init__(self, jobs: int, sink: Sink, *, detach: bool = False) -> None:
        """``detach``: start each supervisor through :mod:`conveyor.pipeline.detach`, for a
        host process whose children may be SIGKILLed with it (a Ray worker)."""
        if jobs < 1:
            raise ValueError(f"LocalPool needs jobs >= 1, got {jobs}")
        self._jobs = jobs
        self._sink = sink
        self._lock = threading.Lock()
        self._queue: deque[Job] = deque()
        self._done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._threads: list[threading.Thread] = []
        self._workers = 0
        self._pending = 0  # submitted, not dropped, and not yet returned by wait()
        self._stopped = False
        self._launcher = (*_DETACH, *_SUPERVISOR) if detach else _SUPERVISOR

    @property
    def busy(self) -> int:
        """Jobs queued, running, or finished but not yet returned by :meth:`wait`."""
        with self._lock:
            return self._pending

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._stopped:
                raise RuntimeError(f"cannot submit stage {job.stage!r}: the pool is stopped")
            self._pending += 1
            if self._workers >= self._jobs:
                self._queue.append(job)
                return
            self._workers += 1
            self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(target=self._work, args=(job,), daemon=True)
            self._threads.append(thread)
        thread.start()

    def wait(self) -> list[Outcome]:
        with self._lock:
            if self._pending == 0:
                return []
        outcomes = [self._done.get()]
        while not self._done.empty():
            outcomes.append(self._done.get_nowait())
        with self._lock:
            self._pending -= len(outcomes)
        return outcomes

    def stop(self, grace: float = 5.0) -> None:
        with self._lock:
            self._stopped = True
            self._pending -= len(self._queue)
            self._queue.clear()
            threads = list(self._threads)
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._signal(signal.SIGKILL)
        for thread in threads:
            thread.join()

    def _signal(self, signum: signal.Signals) -> None:
        with self._lock:
            for proc in self._procs:
                # The group outlives a leader that already exited: grandchildren are in it too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signum)

    def _work(self, job: Job) -> None:
        while True:
            start = time.monotonic()
            try:
                outcome = self._run(job, start)
            except Exception as exc:  # a lost outcome would hang wait() forever
                outcome = Outcome(
                    job.stage, 1, time.monotonic() - start, f"internal error: {exc!r}"
                )
            self._done.put(outcome)
            with self._lock:
                if self._stopped or not self._queue:
                    self._workers -= 1
                    return
                job = self._queue.popleft()

    def _run(self, job: Job, start: float) -> Outcome:
        try:
            job.log.parent.mkdir(parents=True, exist_ok=True)
            log = job.log.open("w", encoding="utf-8")
        except OSError as exc:
            reason = f"cannot write the log {job.log}: {exc.strerror or exc}"
            self._sink.line(job.stage, reason, True)
            return Outcome(job.stage, CANNOT_START, time.monotonic() - start, reason)
        with log:
            now = datetime.now().astimezone().isoformat(timespec="seconds")
            log.write(f"== stage {job.stage} started {now} ==\n")
            out = _Output(job.stage, self._sink, log)
            code = 0
            for command in job.commands:
                code = self._command(job, command, out)
                if code != 0:
                    break
        return Outcome(job.stage, code, time.monotonic() - start, "\n".join(out.tail))

    def _command(self, job: Job, command: str, out: _Output) -> int:
        proc = self._spawn(job, command)
        if isinstance(proc, tuple):
            code, reason = proc
            out.line(reason, err=True)
            return code
        try:
            with proc:  # closes both pipes and reaps the child
                assert proc.stdout is not None and proc.stderr is not None
                readers = [
                    threading.Thread(target=out.pump, args=(proc.stdout, False), daemon=True),
                    threading.Thread(target=out.pump, args=(proc.stderr, True), daemon=True),
                ]
                for reader in readers:
                    reader.start()
                for reader in readers:
                    reader.join()
                _output_read(proc)
                return proc.wait()
        finally:
            with self._lock:
                self._procs.discard(proc)

    def _spawn(self, job: Job, command: str) -> subprocess.Popen[bytes] | tuple[int, str]:
        """The running command, or the exit code and reason of one that did not start."""
        # Spawning under the lock means stop() either sees this process or prevents it.
        with self._lock:
            if self._stopped:
                return -signal.SIGTERM.value, f"stopped before {command!r}"
            try:
                proc = subprocess.Popen(
                    [*self._launcher, "/bin/sh", "-c", command],
                    cwd=job.cwd,
                    env=dict(job.env),
                    stdin=subprocess.PIPE,  # its end closing tells the supervisor we are gone
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as exc:
                return CANNOT_START, f"cannot run {command!r} in {job.cwd}: {exc.strerror or exc}"
            self._procs.add(proc)
            return proc


def _output_read(proc: subprocess.Popen[bytes]) -> None:
    """Tell ``proc``'s supervisor that its output is all read: it may finish with the command."""
    assert proc.stdin is not None
    # Unbuffered: a byte left in a buffer would raise again when Popen closes the pipe.
    with contextlib.suppress(BrokenPipeError):  # it was killed (stop) and needs no telling
        os.write(proc.stdin.fileno(), b".")
