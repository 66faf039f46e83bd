"""``POST /feedback``: the true labels of requests this server answered, posted against the
``x-request-id`` of each answer and stored for :mod:`conveyor.monitor.feedback` to join with the
prediction log.

    POST /feedback    [{"id": "<x-request-id>", "label": 1}, ...]   or {"feedback": [...]}
    Authorization: Bearer <token>
    -> 200 {"accepted": 2, "duplicates": 0}

It changes what a rollout decides, so it needs the server's token (``--feedback-token``, or
``CONVEYOR_ADMIN_TOKEN``), compared in constant time: 401 without it or with another, and 403
when the server was given none (an open endpoint would let anyone steer the analysis). A body
that is not such a list is 400, naming the first bad item; more than ``max_items`` items or
``max_body_bytes`` bytes is 413. An id labelled before (here, by another worker, or by
``conveyor feedback add``) or twice in one body is a duplicate: skipped (the first label wins)
and counted in the answer. Labels are on disk before the answer says they were accepted; a
feedback folder that cannot be read or written is 503, and nothing of the body is accepted.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from pathlib import Path
from typing import Any

import orjson

from conveyor.monitor import feedback
from conveyor.serve.errors import RequestError, TooLarge
from conveyor.serve.exchange import Reply, Request, as_json, error, read_body

TOKEN_ENV = "CONVEYOR_ADMIN_TOKEN"
MAX_ITEMS = 10_000
MAX_BODY_BYTES = 4 * 2**20
CHALLENGE = ((b"www-authenticate", b'Bearer realm="conveyor"'),)


class Unauthorized(RequestError):
    status = 401
    code = "UNAUTHENTICATED"


class Forbidden(RequestError):
    status = 403
    code = "PERMISSION_DENIED"


class NotStored(RequestError):
    status = 503
    code = "TEMPORARILY_UNAVAILABLE"


def configured_token(flag: str | None) -> str | None:
    """The token the endpoint needs: ``--feedback-token``'s, else ``$CONVEYOR_ADMIN_TOKEN``'s;
    None (the endpoint refuses everyone) when neither is set or it is empty."""
    return flag or os.environ.get(TOKEN_ENV) or None


def authorize(authorization: bytes | None, token: str | None, what: str = "feedback") -> None:
    """Nothing when ``authorization`` (the header's value) carries ``token``; else
    :class:`Forbidden` (no token configured) or :class:`Unauthorized`. ``what`` names what is
    refused, in the messages."""
    if not token:
        raise Forbidden(
            f"{what} is refused: this server was started without a token",
            hint=f"start it with --feedback-token TOKEN or set {TOKEN_ENV}, then send "
            "'Authorization: Bearer TOKEN'",
        )
    scheme, _, given = (authorization or b"").partition(b" ")
    if not given or scheme.lower() != b"bearer":
        raise Unauthorized(
            f"{what} needs the server's token",
            hint="send 'Authorization: Bearer TOKEN' (the server's --feedback-token or "
            f"{TOKEN_ENV})",
        )
    if not hmac.compare_digest(given.strip(), token.encode()):
        raise Unauthorized("the token is not this server's", hint="check the token you send")


def parse(body: bytes, max_items: int = MAX_ITEMS) -> list[tuple[str, Any]]:
    """The (request id, label) pairs of a body; :class:`RequestError` (400) naming the first bad
    item, :class:`TooLarge` (413) past ``max_items`` (pure)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not JSON: {exc}", hint=_SHAPE) from None
    if isinstance(doc, dict) and "feedback" in doc:
        doc = doc["feedback"]
    if not isinstance(doc, list):
        raise RequestError("the body is not a list of labels", hint=_SHAPE)
    if len(doc) > max_items:
        raise TooLarge(
            f"{len(doc)} labels in one request; this server takes at most {max_items}",
            hint="send them in several requests",
        )
    try:
        return [feedback.check(item, f"item {i}") for i, item in enumerate(doc)]
    except feedback.FeedbackError as exc:
        raise RequestError(exc.message, hint=_SHAPE) from None


_SHAPE = 'send [{"id": "<x-request-id of the answer>", "label": <the true value>}, ...]'


class Feedback:
    """The endpoint's handler (``await handler(request)`` gives the :class:`Reply`, errors
    included). ``folder`` None (a server outside a project) refuses feedback with 403. Holds
    one open segment: :meth:`close` it when the server stops (what a killed server leaves is
    read anyway). Remembers every id labelled in the folder, to tell duplicates: about a
    hundred bytes each, read once and then only what was added since."""

    def __init__(
        self,
        folder: Path | None,
        token: str | None,
        *,
        max_items: int = MAX_ITEMS,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.folder = folder
        self.token = token
        self.max_items = max_items
        self.max_body_bytes = max_body_bytes
        self.writer = feedback.Writer(folder) if folder is not None else None
        self.seen = feedback.Seen(folder) if folder is not None else None
        self._lock = asyncio.Lock()  # one check-and-write at a time: a duplicate is seen

    async def __call__(self, request: Request) -> Reply:
        try:
            authorize(request.headers.get(b"authorization"), self.token)
            if self.writer is None or self.seen is None:
                raise Forbidden(
                    "feedback is refused: this server serves no project to store it in",
                    hint="start `conveyor serve` inside a conveyor project",
                )
            try:
                body = await read_body(request, self.max_body_bytes)
            except TooLarge as exc:
                raise TooLarge(exc.message, hint="send the labels in several requests") from None
            pairs = parse(body, self.max_items)
            async with self._lock:
                accepted, duplicates = await asyncio.to_thread(self._store, pairs)
        except Unauthorized as exc:
            return error(exc, scoring_body=False)._replace(headers=CHALLENGE)
        except RequestError as exc:
            return error(exc, scoring_body=False)
        return as_json({"accepted": accepted, "duplicates": duplicates})

    def _store(self, pairs: list[tuple[str, Any]]) -> tuple[int, int]:
        assert self.writer is not None and self.seen is not None
        try:
            seen = self.seen.refresh()
            labels, duplicates = feedback.fresh(pairs, seen, time.time())
            self.writer.write(labels)
        except feedback.FeedbackError as exc:
            raise NotStored(exc.message, hint=exc.hint) from exc
        seen.update(one["id"] for one in labels)
        return len(labels), duplicates

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
