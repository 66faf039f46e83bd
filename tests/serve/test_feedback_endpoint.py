"""``POST /feedback``: the handler called directly, and mounted in a tiny ASGI app of the
server's own route table, served by uvicorn on loopback and asked by a real HTTP client."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from conveyor.monitor import feedback, predlog
from conveyor.serve.errors import RequestError
from conveyor.serve.exchange import Reply, Request, error
from conveyor.serve.feedback import Feedback, authorize, configured_token, parse
from conveyor.serve.predlog import PredictionLog
from conveyor.serve.routes import Route, Table

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"
BEARER = {b"authorization": f"Bearer {TOKEN}".encode()}


def request(body: bytes, headers: dict[bytes, bytes] | None = None) -> Request:
    chunks = [body[:7], body[7:]]  # the body in two messages, as a client may send it

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    return Request("POST", "/feedback", {}, headers or {}, receive, "rid", False)


def post(handler: Feedback, doc: Any, headers: dict[bytes, bytes] | None = BEARER) -> Reply:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return asyncio.run(handler(request(body, headers)))


def answer(reply: Reply) -> Any:
    return json.loads(reply.body)


# -- the handler, called directly --------------------------------------------------------------


def test_labels_are_stored_and_duplicates_skipped(tmp_path: Path) -> None:
    handler = Feedback(tmp_path, TOKEN)
    reply = post(handler, [{"id": "a", "label": 1}, {"id": "b", "label": "cat"}])
    assert (reply.status, answer(reply)) == (200, {"accepted": 2, "duplicates": 0})
    reply = post(handler, {"feedback": [{"id": "a", "label": 0}, {"id": "c", "label": True}]})
    assert answer(reply) == {"accepted": 1, "duplicates": 1}
    reply = post(handler, [{"id": "d", "label": 1}, {"id": "d", "label": 0}])
    assert answer(reply) == {"accepted": 1, "duplicates": 1}
    assert answer(post(handler, [])) == {"accepted": 0, "duplicates": 0}
    stored = [(x["id"], x["label"]) for x in feedback.read(tmp_path)]
    assert stored == [("a", 1), ("b", "cat"), ("c", True), ("d", 1)]  # before close, too
    handler.close()
    assert all(p.name.endswith(".jsonl") for p in tmp_path.iterdir())


def test_ids_labelled_elsewhere_are_duplicates(tmp_path: Path) -> None:
    feedback.append(tmp_path, [feedback.label("a", 1)])  # `conveyor feedback add`
    other = feedback.Writer(tmp_path)  # another worker, its segment still open
    other.write([feedback.label("b", 1)])
    handler = Feedback(tmp_path, TOKEN)
    reply = post(handler, [{"id": i, "label": 0} for i in ("a", "b", "c")])
    assert answer(reply) == {"accepted": 1, "duplicates": 2}
    other.write([feedback.label("d", 1)])
    assert answer(post(handler, [{"id": "d", "label": 0}])) == {"accepted": 0, "duplicates": 1}
    other.close()
    handler.close()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"not json", "the body is not JSON"),
        ({"id": "a", "label": 1}, "the body is not a list of labels"),
        ([{"id": "a", "label": 1}, "a"], "item 1: not an object"),
        ([{"label": 1}], 'item 0: no "id"'),
        ([{"id": "a", "label": 1}, {"id": 5, "label": 1}], "item 1: id is not a string"),
        ([{"id": "x" * 200, "label": 1}], "item 0: id is 200 characters"),
        ([{"id": "a", "label": [1]}], "item 0: label is not a JSON scalar (got a list)"),
        ([{"id": "a", "label": {"k": 1}}], "item 0: label is not a JSON scalar"),
        ([{"id": "a"}], 'item 0: no "label"'),
    ],
)
def test_a_malformed_body_is_400_naming_the_bad_item(
    tmp_path: Path, doc: Any, message: str
) -> None:
    handler = Feedback(tmp_path, TOKEN)
    reply = post(handler, doc)
    assert reply.status == 400
    assert answer(reply)["error"].startswith(message)
    assert "hint" in answer(reply)["error"]
    assert not tmp_path.joinpath("x").exists() and list(feedback.read(tmp_path)) == []


def test_over_the_limits_is_413(tmp_path: Path) -> None:
    handler = Feedback(tmp_path, TOKEN)
    many = [{"id": f"r{i}", "label": 1} for i in range(10_001)]
    reply = post(handler, many)
    assert reply.status == 413 and "10001 labels" in answer(reply)["error"]
    assert answer(post(handler, many[:10_000]))["accepted"] == 10_000
    small = Feedback(tmp_path / "small", TOKEN, max_body_bytes=100)
    reply = post(small, [{"id": f"r{i}", "label": 1} for i in range(10)])
    assert reply.status == 413 and "at most 100 bytes" in answer(reply)["error"]
    assert "several requests" in answer(reply)["error"]
    handler.close()


@pytest.mark.parametrize(
    "header",
    [None, b"Bearer wrong", b"Bearer " + TOKEN.encode() + b"x", b"Basic " + TOKEN.encode(), b""],
)
def test_without_the_token_is_401(tmp_path: Path, header: bytes | None) -> None:
    handler = Feedback(tmp_path, TOKEN)
    headers = {} if header is None else {b"authorization": header}
    reply = post(handler, [{"id": "a", "label": 1}], headers)
    assert reply.status == 401
    assert (b"www-authenticate", b'Bearer realm="conveyor"') in reply.headers
    assert list(feedback.read(tmp_path)) == []


def test_the_scheme_is_case_insensitive(tmp_path: Path) -> None:
    handler = Feedback(tmp_path, TOKEN)
    reply = post(
        handler, [{"id": "a", "label": 1}], {b"authorization": b"bearer " + b"s3cret-token"}
    )
    assert reply.status == 200
    handler.close()


def test_a_server_without_a_token_refuses_feedback_with_a_hint(tmp_path: Path) -> None:
    for handler in (Feedback(tmp_path, None), Feedback(tmp_path, "")):
        reply = post(handler, [{"id": "a", "label": 1}])
        assert reply.status == 403
        assert "--feedback-token" in answer(reply)["error"]
        assert "CONVEYOR_ADMIN_TOKEN" in answer(reply)["error"]
    reply = post(Feedback(None, TOKEN), [{"id": "a", "label": 1}])
    assert reply.status == 403 and "no project" in answer(reply)["error"]
    assert list(feedback.read(tmp_path)) == []


def test_the_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    authorize(b"Bearer abc", "abc")
    with pytest.raises(RequestError):
        authorize(b"Bearer abd", "abc")
    assert compared == [(b"abc", b"abc"), (b"abd", b"abc")]


def test_the_token_comes_from_the_flag_else_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CONVEYOR_ADMIN_TOKEN", raising=False)
    assert configured_token(None) is None
    monkeypatch.setenv("CONVEYOR_ADMIN_TOKEN", "from-env")
    assert configured_token(None) == "from-env"
    assert configured_token("flag") == "flag"
    monkeypatch.setenv("CONVEYOR_ADMIN_TOKEN", "")
    assert configured_token(None) is None


def test_parse_takes_both_shapes() -> None:
    assert parse(b'[{"id": "a", "label": 1.5}]') == [("a", 1.5)]
    assert parse(b'{"feedback": [{"id": "a", "label": "x", "extra": 1}]}') == [("a", "x")]


def test_a_store_that_cannot_be_written_is_503(tmp_path: Path) -> None:
    blocked = tmp_path / "feedback"
    blocked.write_text("a file where the folder should be")
    reply = post(Feedback(blocked, TOKEN), [{"id": "a", "label": 1}])
    assert reply.status == 503 and "Not a directory" in answer(reply)["error"]


# -- mounted in an ASGI app, over real HTTP ----------------------------------------------------


class TinyApp:
    """The least an app does to mount the handler: the route table, the request, the reply."""

    def __init__(self, handler: Feedback) -> None:
        self.routes = Table([Route("/feedback", {"POST": handler})])

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        found = self.routes.match(scope["path"])
        assert found is not None
        route, params = found
        headers = dict(scope["headers"])
        try:
            handler = route.handler(scope["method"])
            reply = await handler(
                Request(scope["method"], scope["path"], params, headers, receive, "rid", False)
            )
        except RequestError as exc:
            reply = error(exc, scoring_body=False)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(b"content-type", reply.content_type), *reply.headers],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "feedback"
    handler = Feedback(folder, TOKEN)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(TinyApp(handler), lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start in 10 s"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", folder
    server.should_exit = True
    thread.join(timeout=10)
    handler.close()
    sock.close()


def http(url: str, doc: Any, token: str | None = TOKEN) -> tuple[int, Any, dict[str, str]]:
    req = urllib.request.Request(url + "/feedback", data=json.dumps(doc).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_feedback_over_http_joins_the_prediction_log(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, folder = served
    log = PredictionLog(tmp_path / "predictions")
    for i in range(10):  # version 1 answered the even ids, version 2 the odd ones
        log.record(f"req-{i}", "clf", str(1 + i % 2), "invocations", [[i]], [i % 3 == 0])
    log.close()
    truth = [{"id": f"req-{i}", "label": True} for i in range(10)]
    status, body, _ = http(url, truth[:6])
    assert (status, body) == (200, {"accepted": 6, "duplicates": 0})
    status, body, _ = http(url, {"feedback": [*truth[4:], {"id": "never", "label": False}]})
    assert (status, body) == (200, {"accepted": 5, "duplicates": 2})
    status, body, headers = http(url, truth, token="guess")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    status, body, _ = http(url, [{"id": "req-1", "label": [1, 2]}])
    assert status == 400 and body["error"].startswith("item 0: label is not a JSON scalar")
    joined = feedback.join(predlog.read(tmp_path / "predictions", "clf"), feedback.read(folder))
    # correct where i % 3 == 0: 0 and 6 on version 1, 3 and 9 on version 2
    assert joined.versions == {"1": feedback.Tally(5, 2), "2": feedback.Tally(5, 2)}
    assert (joined.joined, joined.unknown, joined.duplicates) == (10, 1, 0)


def test_mounted_in_the_servers_own_app(tmp_path: Path) -> None:
    """The route the server's table gets (Route("/feedback", {"POST": handler}, "feedback")),
    answered through the real app: its request id and headers, the challenge on a 401."""
    import httpx

    from conveyor.serve.app import App

    app = App([], root=None)
    handler = Feedback(tmp_path, TOKEN)
    routes = [*app.routes.fixed.values(), *(r for rs in app.routes.patterns.values() for r in rs)]
    app.routes = Table([*routes, Route("/feedback", {"POST": handler}, "feedback")])

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            doc = [{"id": "r1", "label": 1}]
            auth = {"authorization": f"Bearer {TOKEN}"}
            ok = await client.post("/feedback", json=doc, headers=auth)
            assert (ok.status_code, ok.json()) == (200, {"accepted": 1, "duplicates": 0})
            assert ok.headers["x-request-id"]
            refused = await client.post("/feedback", json=doc)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == 'Bearer realm="conveyor"'
            wrong = await client.get("/feedback", headers=auth)
            assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")

    try:
        asyncio.run(main())
    finally:
        app.stop()
        handler.close()
    assert [x["id"] for x in feedback.read(tmp_path)] == ["r1"]
