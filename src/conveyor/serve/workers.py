"""Metrics summed across the worker processes of one ``conveyor serve --workers N``.

Each worker counts its own requests in its own :class:`~conveyor.serve.metrics.Metrics`, and the
kernel hands a scrape to any one of them; Prometheus and the rollout controller need the
server's totals. So the workers share snapshots through files, as prometheus_client's
multiprocess mode does:

- the parent process makes one folder per server (:func:`sharing`; under the project's
  ``.conveyor/serve/``, or the temporary folder outside a project) and names it in the
  environment the workers inherit;
- every worker writes its snapshot to ``<folder>/<pid>.json`` every :data:`INTERVAL` seconds
  (a temporary name renamed over the last: a reader sees a whole snapshot, old or new), and
  once more as it stops;
- the worker that answers ``/metrics`` first writes its own snapshot, then reads everybody's and
  answers :func:`~conveyor.serve.metrics.merge` of them.

Why the answering worker reads its own numbers back from the file it has just written rather
than from memory: a counter must never go down between two scrapes, whichever workers answer
them, or ``rate()`` (and the controller's deltas) would read a counter reset. If worker A
answered with its live count, a scrape answered by B a moment later would see A's older file.
Built from files that only ever move forward, every scrape includes everything an earlier one
did.

A worker that stopped (killed, or replaced by uvicorn) leaves its file behind: a file not
rewritten for :data:`STALE` seconds is a worker that is gone. Its counters and histograms stay
in the totals, for the same reason (the requests it answered were answered); its gauges (what
was in flight, which version it served) are dropped, as they describe a present it is no
longer part of. What a killed worker answered after its last snapshot (at most
:data:`INTERVAL` seconds of requests) is not counted; one stopped gracefully writes a last one.
A new worker that gets a pid already used in this folder moves the old file
aside first, so it counts as gone rather than being overwritten. The parent removes the folder
when the server stops; folders of servers that were killed are swept at the next start.

With one worker none of this runs: its own metrics are the server's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from conveyor.foundation.lock import alive
from conveyor.foundation.paths import CONTROL_DIR
from conveyor.serve.metrics import Family, Metrics, exposition, families, merge

__all__ = ["ENV", "INTERVAL", "STALE", "Shared", "read", "sharing", "sweep"]

ENV = "CONVEYOR_SERVE_METRICS_DIR"
INTERVAL = 0.5  # seconds between two snapshots of a worker
STALE = 5.0  # seconds without a new snapshot after which a worker is gone

_GONE = ".gone.json"
log = logging.getLogger(__name__)


@contextmanager
def sharing(root: Path | None) -> Iterator[Path]:
    """The folder this server's workers share their metrics through, named in ``ENV`` for the
    processes started inside the block, and removed after it."""
    name = f"{os.getpid()}-{secrets.token_hex(4)}"
    try:
        base = _base(root)
        sweep(base)
        (folder := base / name).mkdir(parents=True)
    except OSError:  # a project the server may not write to: the temporary folder will do
        base = _base(None)
        sweep(base)
        (folder := base / name).mkdir(parents=True)
    before = os.environ.get(ENV)
    os.environ[ENV] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
        shutil.rmtree(folder, ignore_errors=True)


class Shared:
    """One worker's side: :meth:`publish` its snapshot, :meth:`render` the server's totals.

    ``before`` runs before each snapshot (to copy values kept elsewhere into the metrics, as the
    prediction log's counts are); ``clock`` is wall-clock time, compared with files' mtimes.
    """

    def __init__(
        self,
        metrics: Metrics,
        folder: Path,
        *,
        pid: int | None = None,
        interval: float = INTERVAL,
        stale: float = STALE,
        before: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.folder = folder
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval
        self.stale = stale
        self.before = before or (lambda: None)
        self.clock = clock
        self.path = folder / f"{self.pid}.json"
        self._written: str | None = None
        if self.path.exists():  # a worker with this pid was here before: it is gone
            self.path.rename(folder / f"{self.pid}-{time.time_ns()}{_GONE}")

    @classmethod
    def from_environment(
        cls, metrics: Metrics, before: Callable[[], None] | None = None
    ) -> Shared | None:
        """The worker's side when its server shares metrics (``ENV`` is set), else None."""
        folder = os.environ.get(ENV)
        if not folder or not Path(folder).is_dir():
            return None
        return cls(metrics, Path(folder), before=before)

    def publish(self) -> str:
        """Write this worker's snapshot (only touch the file when nothing changed); its text."""
        self.before()
        text = self.metrics.render()
        if text == self._written and _touch(self.path):
            return text
        doc = {"pid": self.pid, "families": [_dump(f) for f in families(text)]}
        tmp = self.path.with_name(f".{self.pid}.json.tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")))
        os.replace(tmp, self.path)
        self._written = text
        return text

    def render(self) -> str:
        """The exposition of the whole server: this worker's snapshot and every other's."""
        own = families(self.publish())
        live, gone = read(self.folder, now=self.clock(), stale=self.stale, skip=self.path.name)
        return exposition(merge([own, *live], gone))

    async def run(self) -> None:
        """Publish every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.publish()
            except OSError as exc:  # a full disk must not stop the worker; the next try may do
                log.warning("cannot share this worker's metrics in %s: %s", self.folder, exc)

    def close(self) -> None:
        """The last snapshot, so that what this worker answered stays counted after it stops."""
        try:
            self.publish()
        except OSError as exc:
            log.warning("cannot share this worker's last metrics in %s: %s", self.folder, exc)


def read(
    folder: Path, *, now: float, stale: float = STALE, skip: str = ""
) -> tuple[list[list[Family]], list[list[Family]]]:
    """The snapshots in ``folder`` (but ``skip``), as (running workers', gone workers')."""
    live: list[list[Family]] = []
    gone: list[list[Family]] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return live, gone
    for entry in entries:
        if not entry.name.endswith(".json") or entry.name == skip:
            continue
        try:
            mtime = entry.stat().st_mtime
            doc = json.loads(Path(entry.path).read_bytes())
            snap = [_load(f) for f in doc["families"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # renamed aside meanwhile, or not ours
        if entry.name.endswith(_GONE) or now - mtime > stale:
            gone.append(snap)
        else:
            live.append(snap)
    return live, gone


def _dump(family: Family) -> list[object]:
    return [family.name, family.kind, family.help, [list(s) for s in family.samples]]


def _load(raw: list[object]) -> Family:
    name, kind, doc, samples = raw
    if not isinstance(samples, list):
        raise TypeError("samples must be a list")
    return Family(str(name), str(kind), str(doc), tuple((str(s), float(v)) for s, v in samples))


def _touch(path: Path) -> bool:
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _base(root: Path | None) -> Path:
    if root is not None:
        return root / CONTROL_DIR / "serve"
    return Path(tempfile.gettempdir()) / f"conveyor-{os.getuid()}" / "serve"


def sweep(base: Path, prefix: str = "") -> None:
    """Remove the folders ``<prefix><pid>-...`` in ``base`` whose server (``pid``) is no longer
    running; never through a link, and never another user's."""
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid, _, tail = entry.name[len(prefix) :].partition("-")
        if not (entry.is_dir(follow_symlinks=False) and pid.isdigit() and tail):
            continue
        if not alive(int(pid)) and entry.stat(follow_symlinks=False).st_uid == os.getuid():
            shutil.rmtree(entry.path, ignore_errors=True)
