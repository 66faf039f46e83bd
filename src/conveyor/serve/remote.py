"""A worker's side of the candidate's own process (:mod:`conveyor.serve.host`): the
:class:`Link` to it, and :class:`Remote`, the router's member for a version answered there.

A :class:`Remote` is ready while the version it asked the host for is loaded over the link as it
is now: when the host stops, the link closes, every request waiting on it fails with
:class:`Unavailable` at once, and the member is not ready until a new host has loaded the
version again (the worker's follower asks for it at its next read of the record). The router
answers from stable whatever was at an unavailable candidate (:mod:`conveyor.serve.router`).

The wire, shared with the host: frames of a 4-byte big-endian length and a pickle, read only
from a peer that proved it holds the server's token (see :mod:`conveyor.serve.host`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.serve import errors
from conveyor.serve.metrics import Metrics
from conveyor.serve.predictor import Prediction, Role, Version

if TYPE_CHECKING:
    from conveyor.registry.records import ModelVersion

__all__ = ["TOKEN", "Link", "Remote", "Unavailable", "frame", "host_token", "receive"]

TOKEN = "CONVEYOR_SERVE_HOST_TOKEN"  # a peer sends it first; in the server processes' environment

MAX_FRAME = 1 << 30  # bytes; a peer sending more is not this server's
RETRY = 0.5  # seconds between two attempts to reach a host that is not there
ACK_DELAY = 0.05  # seconds the host may wait before it says how many copies it compared
COPY_DELAY = 0.005  # seconds a worker may hold copies before it sends them
MAX_BUFFERED = 64 * 2**20  # bytes waiting for a host that does not read: then it is gone
_LENGTH = struct.Struct(">I")
_ERRORS: dict[int, type[errors.RequestError]] = {
    404: errors.NotFound,
    413: errors.TooLarge,
    415: errors.Unsupported,
    500: errors.ModelFailed,
    503: errors.NotReady,
    504: errors.TimedOut,
}


class Unavailable(errors.NotReady):
    """The candidate's process is not there (stopped, restarting): nothing reached the model."""


def host_token() -> bytes:
    """The token the server that started this worker gave the candidate's process."""
    token = os.environ.get(TOKEN)
    if not token:
        raise errors.CannotServe(
            f"this worker was told of a candidate's process but not its token ({TOKEN})",
            hint="start workers with `conveyor serve --env ENV`",
        )
    return token.encode()


def frame(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, protocol=5)
    return _LENGTH.pack(len(body)) + body


async def receive(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next message; IncompleteReadError at the end of the stream."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME:
        raise ValueError(f"a frame of {length} bytes")
    message = pickle.loads(await reader.readexactly(length))
    if not isinstance(message, tuple) or len(message) < 2:
        raise ValueError("not a message")
    return message


class Outbox:
    """Messages to one peer, written once per turn of the event loop: under load a turn answers
    many requests, and their messages (copies, replies) cost one system call together rather
    than one each. ``copied`` counts copies done; the count goes with the next frame, or alone
    after ``ACK_DELAY``: the peer only keeps a bound with it, and need not wake for each."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.frames: list[bytes] = []
        self.copies = 0
        self._soon = False
        self._later = False

    def put(self, message: tuple[Any, ...]) -> None:
        self.frames.append(frame(message))
        if not self._soon:
            self._soon = True
            asyncio.get_running_loop().call_soon(self.flush)

    def put_later(self, message: tuple[Any, ...]) -> None:
        """As :meth:`put`, for a message nobody waits on (a copy): it goes with the next frame,
        or after ``COPY_DELAY``, so that the peer wakes once for many."""
        self.frames.append(frame(message))
        self._flush_in(COPY_DELAY)

    def copied(self) -> None:
        self.copies += 1
        self._flush_in(ACK_DELAY)

    def _flush_in(self, seconds: float) -> None:
        if not self._later:
            self._later = True
            asyncio.get_running_loop().call_later(seconds, self._flush_later)

    def _flush_later(self) -> None:
        self._later = False
        if self.copies or self.frames:
            self.flush()

    def flush(self) -> None:
        self._soon = False
        if self.copies:
            self.frames.append(frame(("copied", 0, self.copies)))
            self.copies = 0
        if self.frames and not self.writer.is_closing():
            self.writer.write(b"".join(self.frames))
        self.frames.clear()


class Link:
    """One worker's connection to the host at ``path``: messages numbered, replies matched to
    them. Opened on first use, and again after the host restarted (at most every ``RETRY``)."""

    def __init__(self, path: str, token: bytes, *, max_buffered: int = MAX_BUFFERED) -> None:
        self.path = path
        self.token = token
        self.max_buffered = max_buffered
        self.generation = 0  # connections made: a load made over an older one is gone
        self.copies = 0  # copies sent and not answered yet
        self.pending: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self._numbers = itertools.count()
        self._writer: asyncio.StreamWriter | None = None
        self._outbox: Outbox | None = None
        self._opening: asyncio.Task[None] | None = None
        self._reading: asyncio.Task[None] | None = None
        self._tried = -RETRY

    @property
    def up(self) -> bool:
        writer = self._writer
        return writer is not None and not writer.is_closing()

    async def connect(self) -> bool:
        """Whether the host is reachable now (connecting if need be)."""
        if self.up:
            return True
        if self._opening is None or self._opening.done():
            now = time.monotonic()
            if now - self._tried < RETRY:
                return False
            self._tried = now
            self._opening = asyncio.get_running_loop().create_task(self._open())
        await asyncio.shield(self._opening)
        return self.up

    async def _open(self) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(self.path, limit=2**20)
        except OSError:
            return
        writer.write(self.token)
        self.generation += 1
        self.copies = 0
        self._writer = writer
        self._outbox = Outbox(writer)
        self._reading = asyncio.get_running_loop().create_task(self._read(reader, writer))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                message = await receive(reader)
                if message[0] == "copied":  # the host compared so many copies
                    self.copies = max(self.copies - int(message[2]), 0)
                    continue
                future = self.pending.pop(message[1], None)
                if future is not None and not future.done():
                    future.set_result(message)
        except (asyncio.IncompleteReadError, OSError, ValueError, pickle.UnpicklingError):
            pass
        finally:
            if self._writer is writer:
                self._writer = None
                self.copies = 0
            writer.close()
            waiting, self.pending = self.pending, {}
            for future in waiting.values():
                if not future.done():
                    future.set_exception(Unavailable("the candidate's process stopped"))

    def send(self, kind: str, *args: Any) -> asyncio.Future[tuple[Any, ...]]:
        """Send a message; the future of its reply (Unavailable when the host goes)."""
        outbox = self._outbox
        if outbox is None or not self.up:
            raise Unavailable("the candidate's process is not running")
        if self._stalled():  # it reads nothing: stable answers, its connection is dropped
            assert self._writer is not None
            self._writer.transport.abort()  # the reader fails what waits on it
            raise Unavailable("the candidate's process stopped reading its requests")
        number = next(self._numbers)
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        outbox.put((kind, number, *args))
        return future

    async def ask(self, kind: str, *args: Any, timeout: float | None = None) -> tuple[Any, ...]:
        future = self.send(kind, *args)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise errors.TimedOut(f"the candidate did not answer within {timeout:g} s") from None
        finally:
            if not future.done():
                future.cancel()

    def copy(self, data: Any, primary: Any, timeout: float | None, limit: int) -> bool:
        """Send a shadow's copy without waiting for it; False (nothing sent) when ``limit``
        copies are in flight already or the host is not there."""
        outbox = self._outbox
        if self.copies >= limit or outbox is None or not self.up or self._stalled():
            return False
        listed = getattr(primary, "tolist", None)  # plain values pickle several times faster
        primary = listed() if listed is not None else primary
        outbox.put_later(("copy", 0, data, primary, timeout))  # the host counts them done
        self.copies += 1
        return True

    def _stalled(self) -> bool:
        """Whether more than ``max_buffered`` bytes wait to be written to the host: a host that
        hangs (a stuck model, a stopped process) must not make the worker's memory grow."""
        writer = self._writer
        return writer is not None and writer.transport.get_write_buffer_size() > self.max_buffered

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        for task in (self._opening, self._reading):
            if task is not None:
                task.cancel()


class Remote:
    """A version of model ``name`` answered in the host, as a router's member."""

    def __init__(
        self, uri: str, name: str, link: Link, metrics: Metrics, *, role: Role = "candidate"
    ) -> None:
        self.uri = uri
        self.name = name
        self.link = link
        self.metrics = metrics
        self.role: Role = role
        self.current: Version | None = None  # as the host described it (no model in here)
        self.error: str | None = None
        self._generation = -1

    @property
    def version(self) -> str | None:
        current = self.current
        if current is None or not self.link.up or self.link.generation != self._generation:
            return None
        return current.number

    @property
    def ready(self) -> bool:
        return self.version is not None

    def require(self) -> Version:
        current = self.current
        if current is None or self.version is None:
            why = f": {self.error}" if self.error else " (not loaded in the candidate's process)"
            raise errors.NotReady(f"model {self.name}'s candidate is not ready{why}")
        return current

    async def fetch(self, record: ModelVersion) -> Version:
        """Have the host load ``record``'s version (waiting for it)."""
        from conveyor.foundation.errors import ConveyorError
        from conveyor.registry.package import Model

        if not await self.link.connect():
            raise Unavailable("the candidate's process is not running (yet)")
        generation = self.link.generation
        reply = await self.link.ask("load", str(record.version))
        if reply[0] == "failed":
            self.error = str(reply[2])
            raise ConveyorError(self.error)
        _, _, number, folder, manifest, package = reply
        self.current = Version(number, Model(Path(folder), manifest, None), package)
        self._generation = generation
        self.error = None
        self.metrics.serving(self.uri, self.name, number, self.role)
        return self.current

    async def predict(
        self, data: Any, *, timeout: float | None = None, key: str | None = None
    ) -> tuple[Any, Prediction]:
        """The host's answer; ``data`` goes back as it came (the host checks it against the
        version's signature)."""
        if self.version is None:
            raise Unavailable(f"model {self.name}'s candidate is not loaded")
        waited = None if timeout is None else timeout + 1.0  # the host times the model out
        reply = await self.link.ask("predict", self.role, data, timeout, timeout=waited)
        if reply[0] == "error":
            _, _, status, message, hint = reply
            failure = _ERRORS.get(int(status), errors.RequestError)(str(message), hint=hint)
            raise failure
        return data, Prediction(str(reply[2]), reply[3], self.role)

    def copy(self, data: Any, primary: Any, timeout: float | None, limit: int) -> bool:
        return self.version is not None and self.link.copy(data, primary, timeout, limit)

    def close(self) -> None:
        """Nothing held here: the link is the server's, the model the host's."""
