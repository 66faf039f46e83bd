"""Webhooks: signatures as Standard Webhooks defines them (checked against the spec's published
vector and against an implementation written here), and delivery to real HTTP receivers on
loopback: retried when worth it, given up when not, never holding up the caller."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.monitor import webhooks
from conveyor.monitor.webhooks import BadSignature, Hook, Sender, WebhookError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = {"backoff": 0.01, "timeout": 2.0}  # retries within milliseconds, for tests

pytestmark = pytest.mark.timeout(30)


def independent_check(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The spec's scheme written again from its text, sharing no code with the module."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return expected in headers.get("webhook-signature", "").split(" ")


# --- signing ---------------------------------------------------------------------------------


def test_signing_matches_the_specs_published_vector() -> None:
    # The vector of the Standard Webhooks reference libraries' tests.
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert webhooks.sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    raw = base64.b64decode(SECRET.removeprefix("whsec_"))
    assert webhooks.sign(raw, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_a_secret_is_whsec_base64_or_else_its_own_bytes() -> None:
    assert webhooks.secret_key("whsec_aGVsbG8=") == b"hello"
    assert webhooks.secret_key("whsec_aGVsbG8") == b"hello"  # padding optional
    assert webhooks.secret_key("plain text secret") == b"plain text secret"
    assert webhooks.secret_key(b"\x00\xff") == b"\x00\xff"
    with pytest.raises(WebhookError, match="not base64") as caught:
        webhooks.secret_key("whsec_not*base64")
    assert isinstance(caught.value, ConfigError)
    assert "not*base64" not in str(caught.value)  # a secret is never echoed


def signed(body: bytes, stamp: int, secret: str = SECRET, msg_id: str = "msg_1") -> dict[str, str]:
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(stamp),
        "Webhook-Signature": webhooks.sign(secret, msg_id, stamp, body),
    }


def test_verify_accepts_a_signed_request_within_five_minutes() -> None:
    body, now = b'{"type":"rollout.promoted"}', 1_700_000_000
    webhooks.verify(SECRET, signed(body, now), body, now=now)
    webhooks.verify(SECRET, signed(body, now - 299), body, now=now)
    webhooks.verify(SECRET, signed(body, now + 299), body, now=now)
    with pytest.raises(BadSignature, match="behind"):
        webhooks.verify(SECRET, signed(body, now - 301), body, now=now)
    with pytest.raises(BadSignature, match="ahead"):
        webhooks.verify(SECRET, signed(body, now + 301), body, now=now)


def test_verify_refuses_a_changed_body_id_or_secret() -> None:
    body, now = b'{"a":1}', 1_700_000_000
    headers = signed(body, now)
    with pytest.raises(BadSignature, match="no v1 signature"):
        webhooks.verify(SECRET, headers, b'{"a":2}', now=now)
    with pytest.raises(BadSignature, match="no v1 signature"):
        webhooks.verify(SECRET, {**headers, "Webhook-Id": "msg_2"}, body, now=now)
    with pytest.raises(BadSignature, match="no v1 signature"):
        webhooks.verify("whsec_b3RoZXI=", headers, body, now=now)
    with pytest.raises(BadSignature, match="webhook-signature"):
        webhooks.verify(SECRET, {**headers, "Webhook-Signature": ""}, body, now=now)
    with pytest.raises(BadSignature, match="not seconds"):
        webhooks.verify(SECRET, {**headers, "Webhook-Timestamp": "1.7e9"}, body, now=now)


def test_verify_accepts_any_one_of_several_signatures() -> None:
    # Secret rotation: the old and the new key's signatures side by side, other schemes too.
    body, now = b"{}", 1_700_000_000
    good = signed(body, now)["Webhook-Signature"]
    others = ["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", "v1a,AAAA", "v2,xyz", "v1,%%%"]
    headers = {**signed(body, now), "Webhook-Signature": " ".join([*others, good])}
    webhooks.verify(SECRET, headers, body, now=now)
    with pytest.raises(BadSignature):
        webhooks.verify(SECRET, {**headers, "Webhook-Signature": " ".join(others)}, body, now=now)


# --- what is sent ----------------------------------------------------------------------------


def test_the_body_is_type_timestamp_and_data() -> None:
    body = webhooks.envelope("promoted", {"env": "prod", "at": Path("/x")}, 1_765_108_800.25)
    document = json.loads(body)
    assert document == {
        "type": "rollout.promoted",
        "timestamp": "2025-12-07T12:00:00.250000Z",
        "data": {"env": "prod", "at": "/x"},
    }
    assert datetime.fromisoformat(document["timestamp"]).timestamp() == 1_765_108_800.25
    assert b" " not in body  # minified: what is signed is what is sent


def test_which_answers_are_retried() -> None:
    assert [webhooks.outcome(s) for s in (200, 204, 299)] == ["sent"] * 3
    assert [webhooks.outcome(s) for s in (408, 429, 500, 502, 503, 504)] == ["retry"] * 6
    assert [webhooks.outcome(s) for s in (301, 302, 400, 401, 404, 410)] == ["give_up"] * 6


def test_backoff_doubles_with_jitter_and_five_attempts_take_up_to_thirty_seconds() -> None:
    assert [webhooks.delay(n, 2.0, 0.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert [webhooks.delay(n, 2.0, 0.999999) for n in (1, 2, 3, 4)] == pytest.approx(
        [2.0, 4.0, 8.0, 16.0]
    )
    longest = sum(webhooks.delay(n, 2.0, 0.999999) for n in range(1, 5))
    assert 15.0 <= longest <= 30.0


def test_messages_name_the_receivers_host_not_its_path() -> None:
    assert webhooks.where("https://hooks.slack.com/services/T0/B0/SECRET") == (
        "https://hooks.slack.com"
    )
    assert webhooks.where("http://127.0.0.1:8123/x?token=1") == "http://127.0.0.1:8123"


# --- hooks and their secrets -----------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """A webhook as conveyor.yaml gives it (the shape of conveyor.deploy.config.Webhook)."""

    url: str
    events: tuple[str, ...] = webhooks.DEFAULT_EVENTS
    secret_env: str = ""


def test_a_hooks_secret_is_read_from_the_variable_its_config_names() -> None:
    hook = webhooks.resolve(
        Config("https://h.example/x", secret_env="HOOK_SECRET"), {"HOOK_SECRET": SECRET}
    )
    assert hook.key == base64.b64decode(SECRET.removeprefix("whsec_"))
    assert "MfKQ" not in repr(hook)
    assert webhooks.resolve(Config("https://h.example/x")).key == b""  # sent unsigned


def test_an_unset_secret_variable_is_an_error_naming_it() -> None:
    config = Config("https://h.example/path/secret-token", secret_env="DEPLOY_HOOK_SECRET")
    with pytest.raises(WebhookError, match="DEPLOY_HOOK_SECRET") as caught:
        Sender([config], environ={})
    assert "export DEPLOY_HOOK_SECRET=" in (caught.value.hint or "")
    assert "secret-token" not in str(caught.value)
    with pytest.raises(WebhookError, match=r"DEPLOY_HOOK_SECRET.*not base64"):
        Sender([config], environ={"DEPLOY_HOOK_SECRET": "whsec_!!"})


def test_only_http_urls_are_hooks() -> None:
    for url in ("file:///etc/passwd", "ftp://h/x", "hooks.example/x", "http:///x"):
        with pytest.raises(WebhookError, match="not an http"):
            Hook(url)


# --- delivery to real receivers --------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool  # by webhooks.verify
    independently: bool  # by independent_check
    at: float  # time.monotonic() on arrival


class Receiver:
    """An HTTP server on loopback answering each POST with the next scripted status (then
    200), and recording what came with both verdicts on its signature."""

    def __init__(
        self, statuses: list[int] | None = None, secret: str = SECRET, retry_after: str = ""
    ) -> None:
        self.statuses = list(statuses or [])
        self.received: list[Received] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    webhooks.verify(secret, headers, body)
                    verified = True
                except BadSignature:
                    verified = False
                ok = "webhook-signature" in headers and independent_check(secret, headers, body)
                at = time.monotonic()
                receiver.received.append(Received(self.path, headers, body, verified, ok, at))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status >= 300 and retry_after:
                    self.send_header("retry-after", retry_after)
                if status in (301, 302):
                    self.send_header("location", "/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def test_events_arrive_signed_and_filtered_by_each_hooks_events(receiver: Receiver) -> None:
    hooks = [
        Config(f"{receiver.url}/all", webhooks.EVENTS, secret_env="HOOK_SECRET"),
        Config(f"{receiver.url}/ends", ("promoted", "aborted"), secret_env="HOOK_SECRET"),
    ]
    sender = Sender(hooks, environ={"HOOK_SECRET": SECRET}, **FAST)
    sender.send("started", {"env": "production", "candidate": 4})
    sender.send("rollout.step", {"env": "production", "weight": 10.0})
    sender.send("promoted", {"env": "production", "stable": 4})
    sender.close(timeout=5)

    assert (sender.sent, sender.failed, sender.dropped, sender.retried) == (4, 0, 0, 0)
    got = sorted((r.path, json.loads(r.body)["type"]) for r in receiver.received)
    assert got == [
        ("/all", "rollout.promoted"),
        ("/all", "rollout.started"),
        ("/all", "rollout.step"),
        ("/ends", "rollout.promoted"),
    ]
    for request in receiver.received:
        assert request.verified and request.independently
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"].startswith("msg_")
        assert "." not in request.headers["webhook-id"]
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    promoted = [r for r in receiver.received if b"promoted" in r.body]
    assert promoted[0].headers["webhook-id"] == promoted[1].headers["webhook-id"]  # one event
    assert json.loads(promoted[0].body)["data"] == {"env": "production", "stable": 4}


def test_a_hook_without_a_secret_is_sent_unsigned(receiver: Receiver) -> None:
    sender = Sender([Hook(f"{receiver.url}/open")], **FAST)
    sender.send("started", {"env": "staging"})
    sender.close(timeout=5)
    assert sender.sent == 1
    assert "webhook-signature" not in receiver.received[0].headers
    assert receiver.received[0].headers["webhook-id"].startswith("msg_")


@pytest.mark.parametrize("statuses", [[500, 500], [503, 429], [408]])
def test_a_failing_receiver_gets_the_event_once_it_recovers(statuses: list[int]) -> None:
    receiver = Receiver(statuses)
    try:
        sender = Sender([Hook(receiver.url, secret=SECRET)], **FAST)
        sender.send("aborted", {"env": "production", "reason": "error_rate"})
        sender.close(timeout=5)
    finally:
        receiver.close()
    assert (sender.sent, sender.failed, sender.retried) == (1, 0, len(statuses))
    assert len(receiver.received) == len(statuses) + 1
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1  # the same event
    assert all(r.verified and r.independently for r in receiver.received)  # each re-signed


@pytest.mark.parametrize("status", [400, 404, 410, 302])
def test_a_final_answer_is_not_retried(status: int) -> None:
    receiver = Receiver([status])
    notes: list[str] = []
    try:
        hook = Hook(f"{receiver.url}/hook", secret=SECRET)
        sender = Sender([hook], notify=notes.append, **FAST)
        sender.send("promoted", {"env": "production"})
        sender.close(timeout=5)
    finally:
        receiver.close()
    assert (sender.sent, sender.failed, sender.retried) == (0, 1, 0)
    assert [r.path for r in receiver.received] == ["/hook"]  # a redirect is not followed
    assert len(notes) == 1 and f"answered {status}" in notes[0] and "rollout.promoted" in notes[0]
    assert "/hook" not in notes[0]


def test_attempts_are_bounded() -> None:
    receiver = Receiver([503] * 10)
    try:
        sender = Sender([Hook(receiver.url)], attempts=3, notify=lambda _m: None, **FAST)
        sender.send("started", {})
        sender.close(timeout=5)
    finally:
        receiver.close()
    assert (sender.sent, sender.failed, sender.retried) == (0, 1, 2)
    assert len(receiver.received) == 3


def test_a_receivers_retry_after_is_honoured() -> None:
    receiver = Receiver([429], retry_after="1")
    try:
        sender = Sender([Hook(receiver.url)], **FAST)
        sender.send("started", {})
        sender.close(timeout=5)
    finally:
        receiver.close()
    assert sender.sent == 1
    first, second = receiver.received
    assert second.at - first.at >= 0.95  # not the 10 ms backoff


def test_a_failing_receiver_is_probed_not_flooded() -> None:
    receiver = Receiver([503] * 100)
    try:
        sender = Sender([Hook(receiver.url, ("step",))], backoff=0.4, notify=lambda _m: None)
        for n in range(20):
            sender.send("step", {"step": n})
        receiver.arrived.wait(2)
        time.sleep(0.15)  # within the first backoff (0.2 to 0.4 s)
        assert len(receiver.received) == 1  # one attempt, not one per queued event
        assert sender.pending == 20
        sender.close(timeout=0)
    finally:
        receiver.close()
    assert sender.failed == 20


def test_one_receiver_down_does_not_delay_another(receiver: Receiver) -> None:
    down = Hook(f"http://127.0.0.1:{dead_port()}/hook", webhooks.EVENTS)
    up = Hook(f"{receiver.url}/up", webhooks.EVENTS)
    sender = Sender([down, up], backoff=5.0, notify=lambda _m: None)
    for n in range(10):
        sender.send("step", {"step": n})
    deadline = time.monotonic() + 5
    while len(receiver.received) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(receiver.received) == 10
    assert time.monotonic() < deadline - 4  # well before the down hook's first retry
    sender.close(timeout=0)
    assert (sender.sent, sender.failed) == (10, 10)


def dead_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


PAYLOAD = {"env": "production", "checks": [{"metric": "error_rate", "stable": 0.01}] * 5}


def thousand_sends(sender: Sender) -> float:
    """Seconds of the caller's (wall-clock) time 1,000 sends take."""
    started = time.perf_counter()
    for n in range(1000):
        sender.send("analysis", {**PAYLOAD, "step": n})
    return time.perf_counter() - started


def test_a_dead_receiver_costs_the_caller_nothing() -> None:
    # Every event queued (the costlier path) while the worker fails at the dead port. The best
    # of three senders: a blocking send is slow every time, a busy shared machine only sometimes.
    url = f"http://127.0.0.1:{dead_port()}/hook"
    spent = []
    for _ in range(3):
        sender = Sender([Hook(url, webhooks.EVENTS, SECRET)], backoff=0.05, notify=lambda _m: None)
        spent.append(thousand_sends(sender))
        assert sender.pending + sender.failed == 1000 and sender.dropped == 0
        sender.close(timeout=0)
    assert min(spent) < 0.05, f"1,000 sends took {[round(s * 1000) for s in spent]} ms"


def test_memory_stays_bounded_by_max_queue_while_a_receiver_is_down() -> None:
    hook = Hook(f"http://127.0.0.1:{dead_port()}/hook", webhooks.EVENTS, SECRET)
    sender = Sender([hook], max_queue=100, notify=lambda _m: None, backoff=0.05)
    thousand_sends(sender)
    assert sender.pending <= 100
    assert sender.dropped >= 900
    time.sleep(0.2)  # the worker is attempting and retrying meanwhile
    thousand_sends(sender)
    assert sender.pending <= 100
    assert sender.dropped >= 1900
    started = time.perf_counter()
    sender.close(timeout=0.3)
    assert time.perf_counter() - started < 1.0
    counts = sender.counts()
    assert counts.sent == 0 and counts.pending == 0
    assert counts.failed + counts.dropped == 2000
    sender.send("promoted", {})  # after close: dropped, never raised
    assert sender.dropped == counts.dropped + 1


def test_a_receiver_that_never_answers_does_not_hold_up_send_or_close() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        sender = Sender([Hook(url)], timeout=10.0, notify=lambda _m: None)
        started = time.perf_counter()
        for _ in range(50):
            sender.send("started", {"env": "production"})
        assert time.perf_counter() - started < 0.05
        time.sleep(0.1)  # the first attempt is now waiting on the silent receiver
        started = time.perf_counter()
        sender.close(timeout=0.3)
        assert time.perf_counter() - started < 1.0
    assert sender.sent == 0


def test_sends_from_several_threads_are_each_delivered_once(receiver: Receiver) -> None:
    sender = Sender([Hook(receiver.url, ("step",), SECRET)], **FAST)

    def burst(thread: int) -> None:
        for n in range(50):
            sender.send("step", {"thread": thread, "n": n})

    threads = [threading.Thread(target=burst, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sender.close(timeout=10)
    assert (sender.sent, sender.failed, sender.dropped) == (200, 0, 0)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 200
    seen = {
        (d["data"]["thread"], d["data"]["n"])
        for d in map(json.loads, (r.body for r in receiver.received))
    }
    assert seen == {(t, n) for t in range(4) for n in range(50)}
    assert all(r.verified and r.independently for r in receiver.received)


def test_a_payload_json_cannot_hold_is_counted_not_raised(receiver: Receiver) -> None:
    notes: list[str] = []
    sender = Sender([Hook(receiver.url)], notify=notes.append, **FAST)
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    sender.send("started", cycle)
    sender.send("started", {"fine": True})
    sender.close(timeout=5)
    assert (sender.sent, sender.failed) == (1, 1)
    assert "not JSON" in notes[0]


def test_a_notify_callback_that_raises_does_not_stop_deliveries() -> None:
    def broken(_message: str) -> None:
        raise RuntimeError("the caller's bug")

    receiver = Receiver([400])
    try:
        sender = Sender([Hook(receiver.url)], notify=broken, **FAST)
        sender.send("started", {"n": 1})  # refused: notify is called, and raises
        sender.send("started", {"n": 2})
        sender.close(timeout=5)
    finally:
        receiver.close()
    assert (sender.sent, sender.failed) == (1, 1)


def test_a_sender_without_hooks_does_nothing() -> None:
    sender = Sender([])
    sender.send("promoted", {"env": "production"})
    sender.close()
    assert sender.counts() == webhooks.Counts(0, 0, 0, 0, 0)
