"""The candidate's own process: a rollout's candidate (or shadow) version answers from here,
apart from the workers that answer with stable.

``conveyor serve --env ENV`` starts this process next to its workers (:class:`Hosting`, in the
supervisor) and restarts it when it stops. Every worker's router reaches it through a Unix
socket (:mod:`conveyor.serve.remote` is the worker's side), so that

- a candidate that crashes, hangs or leaks takes only this process down: the workers go on
  answering from stable (a request that was at the candidate is answered by stable instead), and
  the rollout controller, told by :class:`Hosting`, aborts the rollout;
- the candidate's model calls, and a shadow's copies with their comparison, run on another core
  than stable's: a copy costs the worker that sent it a pickle (the writes of one turn of its
  event loop go out together). Copies are compared in batches on a thread of lower priority
  (nice 10): a shadow uses the processor time the answers leave, and when there is none its
  copies queue, until the workers' bound on copies in flight drops the next ones (counted).

The workers say what to load (the record they follow names it); a worker asking for a version
already loaded, or loading, waits for that load. A shadow's comparison and counts are made here
and published with this process's metrics (:mod:`conveyor.serve.workers`: the server's
``/metrics`` sums them in).

The wire: frames of a 4-byte big-endian length and a pickle. Pickle, because requests are numpy
arrays and nested values and this is the fastest exact way to move them; it is safe here because
both ends are this server's own processes: the socket lives in a folder only this user can open
(mode 0700), and a peer must first send the server's token (random, in the environment of the
processes the server starts, never on disk) before anything it sends is unpickled.

    worker -> host                               host -> worker
    ("load", n, version)                         ("loaded", n, version, folder, manifest, package)
                                                 ("failed", n, why)
    ("predict", n, role, data, timeout)          ("answer", n, version, outputs)
                                                 ("error", n, status, message, hint)
    ("copy", 0, data, primary outputs, timeout)  ("copied", 0, copies done since the last)

Messages are written once per turn of the event loop (:class:`~conveyor.serve.remote.Outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from conveyor.serve import errors, payload, workers
from conveyor.serve.metrics import Metrics
from conveyor.serve.options import Options
from conveyor.serve.predictor import Role
from conveyor.serve.remote import TOKEN, Outbox, receive
from conveyor.serve.router import agreement, counted, rows_of
from conveyor.serve.served import Served, reason

__all__ = ["CONFIG", "TOKEN", "Host", "HostConfig", "Hosting", "main"]

CONFIG = "CONVEYOR_SERVE_HOST"  # the host's settings (JSON), in its environment
SHADOW_NICE = 10  # the shadow's thread's nice value: a copy waits for a free processor


@dataclass(frozen=True)
class HostConfig:
    socket: str
    root: str
    model: str
    options: dict[str, Any]
    nice: int = 0  # added to the process's nice value: a shadow's answers go to nobody

    def dumps(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def loads(cls, raw: str) -> HostConfig:
        return cls(**json.loads(raw))


class Host:
    """Loads the version the workers ask for into one slot and answers their messages."""

    def __init__(self, config: HostConfig, token: bytes, metrics: Metrics | None = None) -> None:
        self.config = config
        self.root = Path(config.root)
        self.token = token
        self.options = Options(**config.options)
        self.metrics = metrics or Metrics()
        self.served: Served | None = None
        self.loading: dict[str, asyncio.Task[Served]] = {}
        self.peers: set[asyncio.StreamWriter] = set()
        self.copies: list[Copy] = []  # waiting for the shadow's thread
        self._copying: asyncio.Task[None] | None = None
        self._shadow = ThreadPoolExecutor(1, "conveyor-shadow", initializer=_lower_priority)

    async def serve(self) -> asyncio.base_events.Server:
        path = self.config.socket
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a host stopped before this one left it
        server = await asyncio.start_unix_server(self._peer, path, limit=2**20)
        os.chmod(path, 0o600)
        return server

    async def _peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks: set[asyncio.Task[None]] = set()
        self.peers.add(writer)
        outbox = Outbox(writer)
        try:
            given = await asyncio.wait_for(reader.readexactly(len(self.token)), 5.0)
            if not hmac.compare_digest(given, self.token):
                return
            while True:
                message = await receive(reader)
                if message[0] == "copy":  # no task each: they queue for the shadow's thread
                    self._copy(message[2], message[3], outbox)
                    continue
                task = asyncio.get_running_loop().create_task(self._answer(message, outbox))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError):
            pass  # the worker went away (or was never one): its requests go with it
        except asyncio.CancelledError:
            return  # the host stops
        finally:
            for task in tasks:
                task.cancel()
            self.peers.discard(writer)
            writer.close()

    async def _answer(self, message: tuple[Any, ...], outbox: Outbox) -> None:
        kind, n = message[0], message[1]
        if kind == "load":
            reply = await self._load(n, str(message[2]))
        elif kind == "predict":
            reply = await self._predict(n, message[2], message[3], message[4])
        else:
            return
        outbox.put(reply)

    async def _load(self, n: int, version: str) -> tuple[Any, ...]:
        served = self.served
        if served is None or served.version != version:
            task = self.loading.get(version)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._fetch(version))
                self.loading[version] = task
                task.add_done_callback(lambda _t: self.loading.pop(version, None))
            try:
                served = await asyncio.shield(task)
            except Exception as exc:
                return ("failed", n, reason(exc))
        current = served.require()
        model = current.model
        return ("loaded", n, current.number, str(model.folder), model.manifest, current.package)

    async def _fetch(self, version: str) -> Served:
        from conveyor.serve.follow import resolve_version, settle

        options = self.options
        uri = f"models:/{self.config.model}/{version}"
        served = Served(
            uri,
            self.root,
            self.metrics,
            role="candidate",
            max_batch_size=options.max_batch_size,
            max_latency_ms=options.max_latency_ms,
            max_rows=options.max_rows,
        )
        record = await asyncio.to_thread(resolve_version, self.root, uri)
        await asyncio.to_thread(served.load, record)
        settle()
        old, self.served = self.served, served
        if old is not None:
            self.metrics.forget(old.uri)
            old.close()
        return served

    async def _predict(self, n: int, role: Role, data: Any, timeout: float) -> tuple[Any, ...]:
        served = self.served
        try:
            if served is None:
                raise errors.NotReady("the candidate is not loaded")
            self._role(served, role)
            _, prediction = await served.predict(data, timeout=timeout)
        except errors.RequestError as exc:
            return ("error", n, exc.status, exc.message, exc.hint)
        except Exception as exc:  # a bug must cost one request, not the candidate
            return ("error", n, 500, f"internal error: {type(exc).__name__}: {exc}", None)
        return ("answer", n, prediction.version, prediction.outputs)

    # -- a shadow's copies ----------------------------------------------------------------------

    def _copy(self, data: Any, primary: Any, outbox: Outbox) -> None:
        self.copies.append(Copy(data, primary, outbox, time.perf_counter()))
        if self._copying is None or self._copying.done():
            self._copying = asyncio.get_running_loop().create_task(self._compare_copies())

    async def _compare_copies(self) -> None:
        """Compare the copies queued, a batch at a time, on the shadow's thread: what queues
        while one batch runs is the next (one model call for all of them)."""
        loop = asyncio.get_running_loop()
        while self.copies:
            served = self.served
            batch, self.copies = self.copies[:_COPIES], self.copies[_COPIES:]
            if served is None:  # nothing loaded (the rollout moved on): counted as done
                for copy in batch:
                    copy.outbox.copied()
                continue
            self._role(served, "shadow")
            results = await loop.run_in_executor(self._shadow, _compared, served, batch)
            now = time.perf_counter()
            for copy, (version, status, agreed, rows) in zip(batch, results, strict=True):
                counted(self.metrics, served.name, version, status, agreed, rows, now - copy.queued)
                copy.outbox.copied()

    def _role(self, served: Served, role: Role) -> None:
        if served.role != role:
            served.role = role
            if served.version is not None:
                self.metrics.serving(served.uri, served.name, served.version, role)

    def close(self) -> None:
        if self._copying is not None:
            self._copying.cancel()
        self._shadow.shutdown(wait=False, cancel_futures=True)
        for writer in list(self.peers):
            writer.close()
        if self.served is not None:
            self.served.close()


class Copy(NamedTuple):
    data: Any  # the request's input, as the worker read it
    primary: Any  # stable's outputs for it
    outbox: Outbox  # of the worker that sent it
    queued: float


_COPIES = 256  # copies compared in one model call at most


def _compared(served: Served, batch: list[Copy]) -> list[tuple[str, int, int, int]]:
    """(version, status, rows agreed, rows) of each copy: checked against the candidate's
    signature one by one (a bad one fails alone), predicted together, compared with stable."""
    current = served.require()
    signature = current.model.signature
    rows = [rows_of(copy.primary) for copy in batch]
    results = [(current.number, 200, 0, n) for n in rows]  # each replaced below
    payloads, sizes, where = [], [], []
    for i, copy in enumerate(batch):
        try:
            checked = payload.conform(signature, copy.data)
        except errors.RequestError as exc:
            results[i] = (current.number, exc.status, 0, rows[i])
            continue
        payloads.append(checked)
        sizes.append(payload.rows(checked))
        where.append(i)
    answers = served.run_batch(payloads, sizes) if payloads else []
    for i, answer in zip(where, answers, strict=True):
        if isinstance(answer, errors.RequestError):
            results[i] = (current.number, answer.status, 0, rows[i])
        else:
            agreed = agreement(batch[i].primary, answer.outputs)
            results[i] = (answer.version, 200, agreed, rows[i])
    return results


def _lower_priority() -> None:
    """The shadow's thread yields the processor to anything answering a client: its answers
    are only compared. (Linux sets a nice value per thread; elsewhere, nothing happens.)"""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SHADOW_NICE)


class Hosting:
    """The supervisor's side: starts the host, starts it again when it stops (after
    ``pause`` seconds), and remembers when and why it failed (killed, or exited with an error),
    so that the rollout controller aborts a rollout whose candidate's process failed
    (:meth:`stopped_since`). A host that exits 0 was asked to stop: a Ctrl-C or SIGTERM sent to
    the whole server reaches it before the server's own shutdown, and must not abort the
    rollout the next server resumes.

    The socket lives in a new folder only this user can open; :meth:`environment` is what the
    workers need to reach it (the token and the socket's path). With ``shadow`` (an
    environment whose candidates only ever shadow) the whole process runs at nice 10, not only
    the thread that compares copies."""

    def __init__(
        self,
        root: Path,
        model: str,
        options: Options,
        *,
        notify: Callable[[str], None] | None = None,
        pause: float = 1.0,
        shadow: bool = False,
    ) -> None:
        workers.sweep(Path(tempfile.gettempdir()), _FOLDER)  # of servers killed before
        self.folder = Path(tempfile.mkdtemp(prefix=f"{_FOLDER}{os.getpid()}-"))  # mode 0700
        self.socket = str(self.folder / "candidate.sock")
        self.token = secrets.token_hex(32)
        nice = SHADOW_NICE if shadow else 0  # only ever a shadow: all of it yields to answers
        self.config = HostConfig(self.socket, str(root), model, asdict(options), nice)
        self.notify = notify or (lambda _message: None)
        self.pause = pause
        self.stops: list[tuple[float, str]] = []  # (wall-clock time, why)
        self.process: subprocess.Popen[bytes] | None = None
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None

    def environment(self) -> dict[str, str]:
        return {TOKEN: self.token}

    def start(self) -> None:
        self.process = self._spawn()
        self._watcher = threading.Thread(
            target=self._watch, name="conveyor-serve-host", daemon=True
        )
        self._watcher.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, CONFIG: self.config.dumps(), TOKEN: self.token}
        return subprocess.Popen([sys.executable, "-m", "conveyor.serve.host"], env=env)

    def _watch(self) -> None:
        while not self._closing.is_set():
            process = self.process
            assert process is not None
            code = process.wait()
            if self._closing.is_set():
                return
            if code != 0:  # 0: asked to stop (the server's Ctrl-C or SIGTERM reached it first)
                why = _ended(code)
                self.stops.append((time.time(), why))
                del self.stops[:-16]
                self.notify(f"the candidate's process {why}; starting it again")
            if self._closing.wait(self.pause):
                return
            self.process = self._spawn()

    def stopped_since(self, since: float) -> str | None:
        """Why the host last stopped, if it stopped at or after ``since`` (wall-clock time)."""
        for when, why in reversed(self.stops):
            if when >= since:
                return f"the candidate's process {why}"
        return None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def close(self) -> None:
        self._closing.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        shutil.rmtree(self.folder, ignore_errors=True)


_FOLDER = "conveyor-serve-"  # + the server's pid + random: the socket's folder


def _ended(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed ({signal.Signals(-code).name})"
        return f"was killed (signal {-code})"
    return f"exited with code {code}"


async def _main(config: HostConfig, token: bytes) -> None:
    from conveyor.serve import memory

    memory.keep_freed_memory()
    if config.nice:
        with contextlib.suppress(OSError):
            os.nice(config.nice)
    host = Host(config, token)
    shared = workers.Shared.from_environment(host.metrics)
    server = await host.serve()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    publishing = loop.create_task(shared.run()) if shared is not None else None
    parent = os.getppid()
    try:
        while os.getppid() == parent and not stop.is_set():  # its server gone: so is this
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        server.close()
        if publishing is not None:
            publishing.cancel()
        if shared is not None:
            shared.close()
        host.close()


def main() -> int:
    """``python -m conveyor.serve.host``, as :class:`Hosting` starts it."""
    raw, token = os.environ.get(CONFIG), os.environ.get(TOKEN)
    if not raw or not token:
        print(f"conveyor serve: {CONFIG} and {TOKEN} are set by `conveyor serve --env`",
              file=sys.stderr)  # fmt: skip
        return 2
    os.environ.pop(TOKEN)  # nothing this process runs (a model's code) needs it
    asyncio.run(_main(HostConfig.loads(raw), token.encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
