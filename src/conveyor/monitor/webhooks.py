"""Webhooks: rollout events POSTed to receivers, signed as Standard Webhooks 1.0 says
(https://www.standardwebhooks.com), so any receiver library of that spec verifies them.

What a receiver gets, one request per event it subscribed to::

    POST <url>
    content-type: application/json
    webhook-id: msg_<hex>               the same at every attempt of one event: an idempotency key
    webhook-timestamp: 1765108800       this attempt's time, in seconds since the epoch
    webhook-signature: v1,<base64 of HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>

    {"type": "rollout.promoted", "timestamp": "2026-12-07T12:00:00.123456Z", "data": {...}}

The key is the secret's bytes; a secret written ``whsec_<base64>`` (the spec's form) stands for the
bytes that base64 decodes to. A hook without a secret is sent without ``webhook-signature``. The
timestamp is signed, so a receiver refuses a replay once it is older than its tolerance
(:func:`verify`: 5 minutes); the signature header may hold several space-separated signatures
(the spec's secret rotation), and one that matches is enough.

Delivery (:class:`Sender`) must never hold up a rollout: a receiver that is down, slow or wrong
costs the caller of :meth:`Sender.send` (from any thread) a JSON serialization and a short lock,
nothing more. One background thread does the HTTP; deliveries waiting (queued or waiting to be
retried) are bounded by ``max_queue``, and past that an event is dropped and counted, never held
without bound. An attempt answered 2xx is done; a connection error, a timeout, 408, 429 or 5xx
is retried with exponential backoff and jitter (by default 5 attempts over 15 to 30 seconds; a
``Retry-After`` is honoured up to a minute); any other answer (4xx, and 3xx: redirects are not
followed) is given up at once, as retrying cannot change it. The backoff is the receiver's, not
the event's: while one fails, its next event waits for the next probe instead of opening one
more connection, and the other receivers are served meanwhile. :meth:`Sender.close` delivers what
it can within its timeout. Counters ``sent``, ``failed``, ``dropped``, ``retried`` count
deliveries (one event to one hook).

Errors: :class:`WebhookError` (a ``ConfigError``) when a hook cannot be set up: its secret's
environment variable unset, a ``whsec_`` secret that is not base64, a URL that is not http(s).
:class:`BadSignature` from :func:`verify`, saying which check failed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import itertools
import logging
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import orjson

from conveyor.foundation.errors import ConfigError, ConveyorError

log = logging.getLogger(__name__)

EVENTS = (
    "started",
    "step",
    "analysis",
    "paused",
    "resumed",
    "verdict",
    "promoted",
    "aborted",
    "rolled_back",
)
DEFAULT_EVENTS = ("started", "promoted", "aborted", "rolled_back")
SECRET_PREFIX = "whsec_"
TOLERANCE = 300.0  # seconds a signed timestamp may be off the receiver's clock
MAX_RETRY_AFTER = 60.0  # a receiver's Retry-After is honoured up to this
USER_AGENT = "conveyor-webhooks"
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z

Outcome = Literal["sent", "retry", "give_up"]


class WebhookError(ConfigError):
    """A hook that cannot be set up: an unset secret variable, a bad secret, a bad URL."""


class BadSignature(ConveyorError):
    """A request :func:`verify` refuses; the message says which check failed."""


# --- signing: pure ---------------------------------------------------------------------------


def secret_key(secret: str | bytes) -> bytes:
    """The HMAC key a secret stands for: ``whsec_<base64>`` is the decoded base64 (padding
    optional), any other text its UTF-8 bytes, bytes themselves."""
    if isinstance(secret, bytes):
        return secret
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise WebhookError(
            "a webhook secret starting with whsec_ is not base64 after it",
            hint="use the secret exactly as the receiver gave it (whsec_ then base64)",
        ) from exc
    if not key:
        raise WebhookError("a webhook secret is whsec_ with nothing after it")
    return key


def sign(secret: bytes | str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` of one attempt: ``v1,`` then the base64 HMAC-SHA256 of
    ``{msg_id}.{timestamp}.{body}``.

    >>> sign(b"key", "msg_1", 1700000000, b"{}")
    'v1,XaXLFEFQ69Q4+demDWPEv5ydXczDW2mM5crCUEFcFBA='
    """
    return "v1," + base64.b64encode(_mac(secret_key(secret), msg_id, str(timestamp), body)).decode()


def verify(
    secret: bytes | str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE,
) -> None:
    """Check a request's Standard Webhooks headers against its raw ``body`` (the bytes as they
    came, not re-serialized JSON); raise :class:`BadSignature` saying what is wrong.

    Accepted when the timestamp is within ``tolerance`` seconds of ``now`` (default: this
    clock) and one of the space-separated ``v1,`` signatures matches (compared in constant
    time); other schemes in the list (``v1a,`` and later) are skipped.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    names = ("webhook-id", "webhook-timestamp", "webhook-signature")
    missing = [name for name in names if not lowered.get(name)]
    if missing:
        raise BadSignature(f"the request has no {', '.join(missing)} header")
    msg_id, stamp, signatures = (lowered[name] for name in names)
    if not (stamp.isascii() and stamp.isdigit()):
        raise BadSignature(f"webhook-timestamp {stamp[:20]!r} is not seconds since the epoch")
    off = int(stamp) - (time.time() if now is None else now)
    if abs(off) > tolerance:
        raise BadSignature(
            f"webhook-timestamp is {abs(off):.0f} s {'ahead of' if off > 0 else 'behind'} "
            f"this clock (tolerance {tolerance:.0f} s)",
            hint="a replayed or long-delayed request; or one of the clocks is wrong",
        )
    expected = _mac(secret_key(secret), msg_id, stamp, body)
    for candidate in signatures.split():
        scheme, _, encoded = candidate.partition(",")
        if scheme != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(expected, given):
            return
    raise BadSignature("no v1 signature of the request matches its body and secret")


def _mac(key: bytes, msg_id: str, stamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()


# --- what is sent, and what an answer means: pure ----------------------------------------------


def envelope(event: str, payload: Mapping[str, Any], when: float) -> bytes:
    """The body of one event: ``{"type": "rollout.<event>", "timestamp", "data"}``, minified,
    the timestamp in ISO-8601 (UTC, ``Z``). Values JSON has no type for are written as their
    ``str`` (a path), datetimes in ISO-8601."""
    document = {
        "type": f"rollout.{event}",
        "timestamp": datetime.fromtimestamp(when, UTC),  # orjson writes it 5x faster than isoformat
        "data": payload,
    }
    return orjson.dumps(document, default=str, option=_JSON_OPTIONS)


def outcome(status: int) -> Outcome:
    """What an HTTP status means for a delivery (the spec's etiquette): 2xx done; 408, 429
    and 5xx worth another attempt; anything else (4xx, an unfollowed 3xx) final."""
    if 200 <= status < 300:
        return "sent"
    if status in (408, 429) or status >= 500:
        return "retry"
    return "give_up"


def delay(attempt: int, backoff: float, rand: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): doubling from
    ``backoff``, with "equal jitter" (between half and all of it, by ``rand`` in [0, 1)) so that
    senders that failed together do not retry together."""
    full = backoff * 2.0 ** (attempt - 1)
    return full / 2 + full / 2 * rand


def where(url: str) -> str:
    """A URL as messages show it: scheme, host and port only, since many receivers (Slack's,
    for one) put their own secret in the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


# --- hooks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    """One receiver: where to POST, which events (the part after ``rollout.``), the secret."""

    url: str
    events: tuple[str, ...] = DEFAULT_EVENTS
    secret: bytes | str = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookError(
                f"webhook URL {self.url[:80]!r} is not an http:// or https:// URL",
                hint="give the receiver's full URL, e.g. https://hooks.example/conveyor",
            )
        secret_key(self.secret)  # a bad whsec_ secret is refused now, not at the first event

    @property
    def key(self) -> bytes:
        return secret_key(self.secret)


class HookConfig(Protocol):
    """A webhook as ``conveyor.yaml`` gives it: the secret by the name of an environment
    variable (``conveyor.deploy.config.Webhook`` is one)."""

    @property
    def url(self) -> str: ...

    @property
    def events(self) -> tuple[str, ...]: ...

    @property
    def secret_env(self) -> str: ...


def resolve(hook: Hook | HookConfig, environ: Mapping[str, str] | None = None) -> Hook:
    """A :class:`Hook` with its secret read from the environment variable its config names."""
    if isinstance(hook, Hook):
        return hook
    name = hook.secret_env
    if not name:
        return Hook(hook.url, tuple(hook.events))
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise WebhookError(
            f"the webhook to {where(hook.url)} signs with the secret in environment variable "
            f"{name}, which is not set",
            hint=f"export {name}=whsec_... (the receiver's secret), or remove secret_env "
            "from the webhook in conveyor.yaml to send unsigned",
        )
    try:
        return Hook(hook.url, tuple(hook.events), value)
    except WebhookError as exc:
        raise WebhookError(f"environment variable {name}: {exc.message}", hint=exc.hint) from None


# --- delivery ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Delivery:
    msg_id: str
    body: bytes
    event: str
    attempts: int = 0


@dataclass(eq=False)
class _Line:
    """One hook's deliveries. While its receiver fails, the whole line is held until the next
    probe: one connection per backoff period, not one per queued event, and no work at all
    (no lock held) for the events waiting behind it."""

    hook: Hook
    ready: deque[_Delivery] = field(default_factory=deque)
    later: list[tuple[float, int, _Delivery]] = field(default_factory=list)  # heap: (due, n, _)
    held: float = 0.0  # monotonic time of the next attempt while failing
    strikes: int = 0  # retryable failures in a row

    def __len__(self) -> int:
        return len(self.ready) + len(self.later)

    def when(self, now: float) -> float:
        """When this line has an attempt to make (inf: nothing to do)."""
        if self.ready:
            return max(self.held, now)
        return max(self.held, self.later[0][0]) if self.later else math.inf

    def take(self, now: float) -> _Delivery:
        if self.later and self.later[0][0] <= now:  # a retry that is due goes first
            return heapq.heappop(self.later)[2]
        return self.ready.popleft()


@dataclass(frozen=True)
class Counts:
    """A sender's counters at one moment (deliveries: one event to one hook)."""

    sent: int
    failed: int
    dropped: int
    retried: int
    pending: int


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect is an answer to act on (update the URL), not to follow: following one would
    # re-send a signed event to wherever the receiver points.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Sender:
    """Sends events to hooks in one background thread; :meth:`send` never blocks or raises.

    ``hooks`` are :class:`Hook` values or configs naming their secret's environment variable
    (read here, from ``environ`` or the process's; an unset one is a :class:`WebhookError`).
    ``notify`` hears about each delivery given up (default: a warning in this module's log).
    ``render`` makes the body of an event (default: :func:`envelope`; monitoring's alerts send
    Alertmanager's webhook body instead).

    >>> sender = Sender([Hook("http://127.0.0.1:9/hook")], attempts=1, timeout=0.1)
    >>> sender.send("promoted", {"env": "production", "stable": 3})
    >>> sender.close(timeout=1.0)
    >>> (sender.sent, sender.failed, sender.pending)
    (0, 1, 0)
    """

    def __init__(
        self,
        hooks: Iterable[Hook | HookConfig],
        *,
        max_queue: int = 1000,
        timeout: float = 5.0,
        attempts: int = 5,
        backoff: float = 2.0,
        environ: Mapping[str, str] | None = None,
        notify: Callable[[str], None] | None = None,
        render: Callable[[str, Mapping[str, Any], float], bytes] | None = None,
    ) -> None:
        self.hooks = tuple(resolve(hook, environ) for hook in hooks)
        self.render = render or envelope  # (event, payload, time) -> the body sent
        self.max_queue = max_queue
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.notify = notify or log.warning
        self.sent = 0  # deliveries answered 2xx
        self.failed = 0  # given up: a final answer, attempts used up, or unsent at close
        self.dropped = 0  # never queued: the queue was full, or the sender closed
        self.retried = 0  # attempts scheduled again after a failure
        self.last_error: str | None = None
        self._cond = threading.Condition()  # guards the lines, the counters and what follows
        self._lines = [_Line(hook) for hook in self.hooks]
        self._turn = 0  # the line looked at first next time: round robin among receivers
        self._order = itertools.count()
        self._ids = itertools.count()  # webhook-id: random per sender, then a counter
        self._id_prefix = uuid.uuid4().hex[:16]
        self._pending = 0  # queued + waiting to be retried + being attempted
        self._closing = False
        self._deadline = math.inf  # monotonic time close() stops delivering at
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._thread: threading.Thread | None = None
        if self.hooks:
            self._thread = threading.Thread(target=self._run, name="conveyor-webhooks")
            self._thread.daemon = True
            self._thread.start()

    @property
    def pending(self) -> int:
        """Deliveries queued, waiting for a retry, or being attempted (at most ``max_queue``)."""
        return self._pending

    def counts(self) -> Counts:
        with self._cond:
            return Counts(self.sent, self.failed, self.dropped, self.retried, self._pending)

    def send(self, event: str, payload: Mapping[str, Any]) -> None:
        """Queue ``event`` (``promoted`` or ``rollout.promoted``) for every hook subscribed to it;
        return at once. A full queue or a closed sender drops it (counted in ``dropped``)."""
        name = event.removeprefix("rollout.")
        lines = [line for line in self._lines if name in line.hook.events]
        if not lines:
            return
        with self._cond:  # full (a receiver down for long): drop before paying for the JSON
            if self._closing or self._pending >= self.max_queue:
                self.dropped += len(lines)
                return
        try:
            body = self.render(name, payload, time.time())
        except Exception as exc:  # orjson refuses e.g. a cycle; the caller must not see it
            with self._cond:
                self.failed += len(lines)
                self.last_error = f"rollout.{name}: its data is not JSON ({exc})"
            self._tell(f"webhooks: {self.last_error}")
            return
        now = time.monotonic()
        with self._cond:
            msg_id = f"msg_{self._id_prefix}{next(self._ids):08x}"
            wake = False
            for line in lines:
                if self._closing or self._pending >= self.max_queue:
                    self.dropped += 1
                    continue
                line.ready.append(_Delivery(msg_id, body, name))
                self._pending += 1
                wake = wake or line.held <= now
            if wake:  # not for a held line: the worker wakes for its next probe anyway
                self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking events and deliver what is pending for at most ``timeout`` seconds
        (retries included, when due in time); what is left then counts as ``failed``."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + max(0.0, timeout)
            self._cond.notify_all()
            deadline = self._deadline
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()) + 0.05)

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tell(self, message: str) -> None:
        try:
            self.notify(message)
        except Exception:  # the caller's callback failing must not stop deliveries
            log.exception("webhooks: notify failed")

    # The worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        while (taken := self._next()) is not None:
            line, delivery = taken
            try:
                result, retry_after = self._attempt(line.hook, delivery)
            except Exception as exc:  # a bug here must not end deliveries for good
                result, retry_after = "give_up", 0.0
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._settle(line, delivery, result, retry_after)

    def _next(self) -> tuple[_Line, _Delivery] | None:
        """The next delivery to attempt, waiting for one; None once closed and done."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._closing and now >= self._deadline:
                    left = self._abandon()
                    break
                count, soonest = len(self._lines), math.inf
                for i in range(self._turn, self._turn + count):
                    line = self._lines[i % count]
                    when = line.when(now)
                    if when <= now:
                        self._turn = (i + 1) % count
                        return line, line.take(now)
                    soonest = min(soonest, when)
                if self._closing and soonest == math.inf:
                    return None
                wait = min(soonest, self._deadline) - now
                self._cond.wait(None if wait == math.inf else wait)
        if left:
            self._tell(f"webhooks: {left} deliveries not done when the sender closed")
        return None

    def _abandon(self) -> int:
        left = sum(len(line) for line in self._lines)
        for line in self._lines:
            line.ready.clear()
            line.later.clear()
        self.failed += left
        self._pending -= left
        return left

    def _attempt(self, hook: Hook, delivery: _Delivery) -> tuple[Outcome, float]:
        """POST once; the outcome, and the receiver's Retry-After in seconds (0 if none)."""
        delivery.attempts += 1
        stamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": delivery.msg_id,
            "webhook-timestamp": str(stamp),
        }
        if hook.key:
            headers["webhook-signature"] = sign(hook.key, delivery.msg_id, stamp, delivery.body)
        request = urllib.request.Request(hook.url, delivery.body, headers, method="POST")
        timeout = min(self.timeout, max(0.05, self._deadline - time.monotonic()))
        try:
            with self._opener.open(request, timeout=timeout) as answer:
                answer.read(65536)
                return outcome(answer.status), 0.0
        except urllib.error.HTTPError as exc:
            with exc:
                self.last_error = f"{where(hook.url)} answered {exc.code}"
                return outcome(exc.code), _retry_after(exc.headers.get("retry-after"))
        except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, reset, timed out
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            self.last_error = f"{where(hook.url)}: {reason or type(exc).__name__}"
            return "retry", 0.0

    def _settle(
        self, line: _Line, delivery: _Delivery, result: Outcome, retry_after: float
    ) -> None:
        with self._cond:
            if result == "retry":
                # The backoff is the receiver's: its failures in a row, whichever events.
                line.strikes += 1
                step = min(line.strikes, max(1, self.attempts - 1))
                wait = max(delay(step, self.backoff, random.random()), retry_after)
                line.held = time.monotonic() + wait
                if delivery.attempts < self.attempts:
                    heapq.heappush(line.later, (line.held, next(self._order), delivery))
                    self.retried += 1
                    return
            else:  # it answered: reachable
                line.strikes, line.held = 0, 0.0
            self._pending -= 1
            if result == "sent":
                self.sent += 1
                return
            self.failed += 1
            message = (
                f"webhooks: gave up rollout.{delivery.event} to {where(line.hook.url)} "
                f"after {delivery.attempts} attempt(s): {self.last_error}"
            )
        self._tell(message)


def _retry_after(value: str | None) -> float:
    """A Retry-After in seconds (the delta-seconds form; an HTTP date is ignored), capped."""
    if value is None or not value.strip().isdigit():
        return 0.0
    return min(float(value.strip()), MAX_RETRY_AFTER)
