"""The monitor of ``conveyor serve --env`` in a process of its own beside the server's workers
(``python -m conveyor.cli.monitor_process``, started and stopped by :class:`MonitorProcess`).

It runs under SCHED_IDLE (:func:`conveyor.foundation.priority.below_serving`), only on
processor time the workers leave, on one thread of BLAS at most. A thread that low in the
supervisor would hold the supervisor's interpreter lock whenever a worker took its core back,
and the rollout controller beside it would wait for it, on a busy server most of all; a
process of its own shares no lock with what answers requests or rolls out, and whatever it
does (a retrain, a failing receiver) stays in it. It says what it does on stderr as the server
does, and ends with its server: on SIGTERM or Ctrl-C, or when its parent is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from conveyor.foundation.priority import below_serving

CONFIG = "CONVEYOR_MONITOR_PROCESS"  # its settings (JSON), in its environment
PARENT_CHECK_S = 0.5
# One thread of numpy's BLAS (a look folds columns; the estimate scores rows): more would
# take cores from the workers for nothing (unless the environment says otherwise).
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class MonitorProcess:
    """The monitor of environment ``env`` as a child process of this one."""

    def __init__(self, root: Path, env: str, url: str, predictions: Path | None) -> None:
        self.settings = {
            "root": str(root),
            "env": env,
            "url": url,
            "predictions": str(predictions) if predictions is not None else None,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**ONE_THREAD, **os.environ, CONFIG: json.dumps(self.settings)}
        self.process = subprocess.Popen([sys.executable, "-m", __name__], env=env)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds (its state is written atomically:
        a kill loses no window)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # first: a Ctrl-C during start-up is quiet
        signal.signal(sig, lambda *_: stop.set())
    below_serving()  # before any import starts a thread: they inherit it
    raw = os.environ.get(CONFIG)
    if not raw:
        _say(f"{CONFIG} is not set: conveyor serve --env starts this process")
        return 2
    settings = json.loads(raw)
    parent = os.getppid()
    thread = _start(settings, stop)
    if thread is None:
        return 0
    while thread.is_alive() and not stop.wait(PARENT_CHECK_S):
        if os.getppid() != parent:  # its server is gone: so is its monitor
            stop.set()
    thread.join(timeout=5)
    return 0


def _start(settings: dict[str, str | None], stop: threading.Event) -> threading.Thread | None:
    """The loop of ``settings``' environment on a thread, or None when it cannot start (told:
    serving goes on without it)."""
    from conveyor.ci.retrainer import action
    from conveyor.deploy.monitoring import open_watch, start_thread
    from conveyor.foundation.errors import ConveyorError

    root, env = Path(str(settings["root"])), str(settings["env"])
    logged = settings.get("predictions")
    try:
        watch = open_watch(
            root, env, predictions=Path(logged) if logged else None, url=settings["url"],
            actions={"retrain": action(root, env, say=_say)},
        )  # fmt: skip
    except ConveyorError as exc:  # a Parquet reference without pyarrow says what to install
        said = f" (hint: {exc.hint})" if exc.hint else ""
        _say(f"monitor {env}: not started: {exc.message}{said}")
        return None
    return start_thread(watch, stop=stop, notify=_say)


def _say(message: str) -> None:
    """One line on stderr, as the server it watches says what it does."""
    print(f"conveyor serve: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
