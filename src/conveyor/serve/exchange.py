"""One request and its reply, as the endpoints see them: plain values, and the helpers that read
a body within the server's limit and make JSON and error replies."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import orjson

from conveyor.serve import scoring
from conveyor.serve.errors import NotAllowed, RequestError, TooLarge

Receive = Callable[[], Awaitable[dict[str, Any]]]

JSON = b"application/json"
TEXT = b"text/plain; version=0.0.4; charset=utf-8"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # what a client may name a request


class Request(NamedTuple):
    method: str
    path: str
    params: dict[str, str]  # the route's {name} and {version}
    headers: dict[bytes, bytes]
    receive: Receive
    request_id: str
    own_id: bool  # the client sent the id in X-Request-Id


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: bytes = JSON
    version: str | None = None  # the version that answered, for x-model-version and metrics
    request_id: str | None = None  # the v2 body's id, when the client sent no header
    headers: tuple[tuple[bytes, bytes], ...] = ()
    role: str | None = None  # the role of the version that answered


class Ids:
    """New request ids: 32 hex digits, a random prefix per process and a counter (as unique as
    uuid4's, at a fraction of its cost)."""

    def __init__(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.count = itertools.count()

    def new(self) -> str:
        return f"{self.prefix}{next(self.count):016x}"


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body; TooLarge as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get(b"content-length", b"")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise RequestError("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def as_json(
    doc: Any, status: int = 200, version: str | None = None, role: str | None = None
) -> Reply:
    body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    return Reply(status, body, JSON, version, role=role)


def error(exc: RequestError, *, scoring_body: bool) -> Reply:
    """The error reply in the protocol's body: MLflow's ``{"error_code", "message"}`` or v2's
    ``{"error"}``; a 405 says in Allow which methods are. An error a router's candidate raised
    names its version and role (:func:`conveyor.serve.router.blame`)."""
    version, role = getattr(exc, "answered", (None, None))
    if scoring_body:
        reply = as_json(scoring.error(exc), exc.status, version, role)
    else:
        message = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
        reply = as_json({"error": message}, exc.status, version, role)
    if isinstance(exc, NotAllowed):
        return reply._replace(headers=((b"allow", exc.allow.encode()),))
    return reply


def _too_large(size: int, limit: int) -> TooLarge:
    return TooLarge(
        f"the body is {size} bytes; this server takes at most {limit} bytes",
        hint="send fewer rows per request, or start the server with a larger --max-body-mb",
    )
