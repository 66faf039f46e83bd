"""The Python logging API: ``conveyor.log_metric`` and friends, for stages and notebooks.

A call appends to memory and costs about a microsecond; records reach the spool (and so the
store) in batches: every :data:`FLUSH_POINTS` points, every :data:`FLUSH_SECONDS` seconds when
more is logged, when a run ends, and at interpreter exit (after an uncaught exception too).

Inside a pipeline stage (``CONVEYOR_RUN_ID`` and ``CONVEYOR_ROOT`` set by ``conveyor run``) the
calls attach to the pipeline's run. Elsewhere ``with conveyor.start_run(name=...) as run:``
opens a run; a call outside any run starts one that ends when the interpreter exits.

    >>> import conveyor
    >>> with conveyor.start_run(name="baseline") as run:  # doctest: +SKIP
    ...     conveyor.log_params({"lr": 0.1})
    ...     for step in range(3):
    ...         conveyor.log_metric("loss", 1.0 / (step + 1), step=step)
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conveyor.foundation.errors import GitError, TrackingError
from conveyor.foundation.paths import find_root
from conveyor.tracking import spool

FLUSH_POINTS = 5000
_PRUNE_KEY = os.environ.get("CONVEYOR_PRUNE_METRIC") or None  # set for a tuning trial
FLUSH_SECONDS = 5.0


def new_run_id() -> str:
    """Sortable by start time, unique without coordination: ``20261127-153012-a1b2c3d4e5``
    (40 random bits: 500 runs started in one second collide with odds of about 1 in 10^7)."""
    import secrets  # 10 ms to import: only when a run starts

    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(5)


class Run:
    """One run being logged to. Thread-safe; use through the module functions or directly."""

    def __init__(self, run_id: str, root: Path, *, owned: bool) -> None:
        self.id = run_id
        self.root = root
        self.owned = owned  # False: a pipeline's run, started and ended by `conveyor run`
        self.implicit = False  # True: started by a log call outside any run
        self._records: list[dict[str, Any]] = []
        self._points: list[list[Any]] = []
        self._lock = threading.RLock()  # re-entered by the SIGTERM handler on this thread
        self._flushed = time.monotonic()

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if step is not None:
            step = _step(step)
        now = time.time()
        with self._lock:
            self._points.extend([str(k), float(v), step, now] for k, v in metrics.items())
            due = len(self._points) >= FLUSH_POINTS
        if due or time.monotonic() - self._flushed > FLUSH_SECONDS:
            self.flush()
        if step is not None and _PRUNE_KEY is not None and _PRUNE_KEY in metrics:
            from conveyor.tracking import pruning

            try:
                pruning.report(float(metrics[_PRUNE_KEY]), step)
            except pruning.TrialPruned:
                self.flush()  # what was logged up to here stays
                raise

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._add({"t": "params", "params": dict(params)})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._add({"t": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def log_artifact(self, path: str | os.PathLike[str]) -> str:
        """Store a file or folder in the object cache and record it; returns its hash."""
        from conveyor.data import build
        from conveyor.data.workspace import Workspace
        from conveyor.foundation.paths import inside

        with Workspace(self.root) as ws:
            target = inside(ws.root, path, what="artifact")
            with ws.odb.batch() as batch:
                built = build.scan(ws.root, target, ws.memo, store=batch, jobs=ws.jobs)
        ref = built.oid + (".tree" if built.is_tree else "")
        rel = target.relative_to(self.root).as_posix()
        self._add({"t": "artifact", "path": rel, "hash": ref, "size": built.size})
        self.flush()  # at once: gc keeps only objects a spool file or the store names
        return ref

    def _add(self, record: dict[str, Any]) -> None:
        record["run"] = self.id
        record["ts"] = time.time()
        with self._lock:
            self._records.append(record)

    def flush(self) -> None:
        """Write what is buffered to the spool (one file, fsynced)."""
        with self._lock:
            records, self._records = self._records, []
            points, self._points = self._points, []
            self._flushed = time.monotonic()
        if points:
            records.append({"t": "metrics", "run": self.id, "ts": time.time(), "points": points})
        if records:
            spool.write(self.root, records)

    def end(self, status: str = "finished") -> None:
        if self.owned:
            self._add({"t": "end", "status": status, "ended": time.time()})
        self.flush()


_current: Run | None = None
_guard = threading.Lock()


def start(name: str = "", *, root: Path | None = None, kind: str = "api") -> Run:
    """Open a run owned by this process (its start record is written at once)."""
    project = (root or find_root()).resolve()
    run = Run(new_run_id(), project, owned=True)
    run._add(
        {
            "t": "run",
            "name": name,
            "kind": kind,
            "status": "running",
            "started": time.time(),
            "user": user_name(),
            **git_state(project),
        }
    )
    return run  # the start record goes out with the first flush: one file per short run


@contextmanager
def start_run(name: str = "") -> Iterator[Run]:
    """``with start_run(name=...) as run:``; the run fails if the block raises."""
    global _current
    with _guard:
        if _current is not None and _current.implicit:
            _current.end("finished")  # the run a bare log call started ends where a new begins
            _current = None
        if _current is not None and _current.owned:
            raise TrackingError(
                f"run {_current.id} is still active", hint="start runs one after another"
            )
        outer = _current
        run = start(name)
        _current = run
    try:
        yield run
    except BaseException:
        run.end("failed")
        raise
    else:
        run.end("finished")
    finally:
        with _guard:
            _current = outer


def active() -> Run:
    """The run calls go to: the stage's pipeline run, the open one, or a new one ended at exit."""
    global _current
    with _guard:
        if _current is None:
            run_id, root = os.environ.get("CONVEYOR_RUN_ID"), os.environ.get("CONVEYOR_ROOT")
            if run_id and root:
                _current = Run(run_id, Path(root), owned=False)
            else:
                _current = start("")
                _current.implicit = True
            atexit.register(_at_exit, _current)
            _flush_on_sigterm(_current)
        return _current


def _flush_on_sigterm(run: Run) -> None:
    """A stage stopped with SIGTERM (Ctrl-C in `conveyor run`) keeps what it logged: Python
    runs no atexit handler for a signal it does not handle."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the program handles it itself

    def handler(signum: int, frame: Any) -> None:
        with contextlib.suppress(Exception):
            run.end("killed") if run.owned else run.flush()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)


def _step(step: Any) -> int:
    """A step as an int (numpy integers included); anything else is a mistake worth naming."""
    import operator

    try:
        return operator.index(step)
    except TypeError:
        raise TrackingError(
            f"step must be a whole number, not {step!r}", hint="pass step=int(...)"
        ) from None


def _at_exit(run: Run) -> None:
    with contextlib.suppress(OSError):  # the project folder is gone: nowhere to keep records
        run.end("finished")


_git_cache: dict[Path, tuple[tuple[int, ...], float, dict[str, Any]]] = {}
GIT_TTL = 2.0  # seconds a git state is reused while HEAD and the index are untouched
GIT_TIMEOUT = 30.0  # a git that hangs (a locked index on a network drive) must not hang a run


def git_state(root: Path) -> dict[str, Any]:
    """Commit, branch, dirty flag and a hash of the uncommitted diff (empty outside git).

    Reused for :data:`GIT_TTL` seconds while HEAD, the index and the root folder keep their
    modification times, so a loop starting hundreds of runs does not start hundreds of gits
    (an edit to a tracked file within those seconds is not seen as dirty until they pass).
    """
    stamp = _git_stamp(root)
    cached = _git_cache.get(root)
    now = time.monotonic()
    if stamp and cached is not None and cached[0] == stamp and now - cached[1] < GIT_TTL:
        return dict(cached[2])
    state = _git_state(root)
    if stamp:
        _git_cache[root] = (stamp, now, state)
    return dict(state)


def _git_stamp(root: Path) -> tuple[int, ...]:
    """mtimes of .git/HEAD, .git/index and the root folder (files added or removed there)."""
    for folder in (root, *root.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return tuple(_mtime(p) for p in (dot_git / "HEAD", dot_git / "index", root))
    return ()


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0  # no index yet (a repository without commits)


def _git_state(root: Path) -> dict[str, Any]:
    import hashlib

    from conveyor.foundation import git

    try:
        work = git.work_state(root, timeout=GIT_TIMEOUT)
    except GitError:
        return {}  # outside a repository, or no git: a run records no commit
    state: dict[str, Any] = {
        "git_commit": work.commit,
        "git_branch": work.branch,
        "git_dirty": work.dirty,
    }
    if work.dirty:
        try:
            diff = git.diff_head(root, timeout=GIT_TIMEOUT)
        except GitError:
            diff = b""  # no commit yet to compare with
        # Hashed as text, as records written before kept it, so equal diffs keep equal hashes.
        text = diff.decode(errors="replace").encode()
        state["diff_hash"] = hashlib.sha256(text).hexdigest()[:16]
    return state


def user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log one value of metric ``key`` (optionally at ``step``) to the active run."""
    active().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    active().log_metrics(metrics, step)


def log_params(params: Mapping[str, Any]) -> None:
    active().log_params(params)


def set_tags(tags: Mapping[str, Any]) -> None:
    active().set_tags(tags)


def log_artifact(path: str | os.PathLike[str]) -> str:
    return active().log_artifact(path)
