"""``POST /deployments/{env}/{action}``: the handler called directly with actions recorded by the
test (the real ones, against a real server, are in tests/deploy/test_rollouts_e2e.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from conveyor.deploy.errors import DeployError
from conveyor.serve.admin import Admin
from conveyor.serve.exchange import Reply, Request

TOKEN = "s3cret-token"
BEARER = {b"authorization": f"Bearer {TOKEN}".encode()}


class Actions:
    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.refuse = refuse

    def __call__(self, env: str, action: str, options: dict[str, Any]) -> dict[str, Any]:
        if self.refuse:
            raise DeployError(self.refuse, hint="`conveyor deploy` starts one")
        self.calls.append((env, action, options))
        return {"env": env, "status": "promoted"}


def post(
    admin: Admin, action: str, body: bytes = b"", headers: dict[bytes, bytes] | None = BEARER
) -> Reply:
    sent = [body]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": sent.pop() if sent else b"", "more_body": False}

    params = {"env": "production", "action": action}
    path = f"/deployments/production/{action}"
    return asyncio.run(admin(Request("POST", path, params, headers or {}, receive, "r", False)))


def test_an_action_with_the_token_is_done_and_answers_the_record() -> None:
    acts = Actions()
    reply = post(Admin(acts, TOKEN), "promote", b'{"full": true}')
    assert reply.status == 200 and json.loads(reply.body)["status"] == "promoted"
    assert acts.calls == [("production", "promote", {"full": True})]
    assert post(Admin(acts, TOKEN), "abort").status == 200
    assert acts.calls[-1] == ("production", "abort", {})


@pytest.mark.parametrize(
    ("token", "headers", "status"),
    [
        (TOKEN, {}, 401),
        (TOKEN, {b"authorization": b"Bearer another"}, 401),
        (None, BEARER, 403),  # a server given no token refuses everyone
    ],
)
def test_without_the_token_nothing_is_done(
    token: str | None, headers: dict[bytes, bytes], status: int
) -> None:
    acts = Actions()
    reply = post(Admin(acts, token), "promote", headers=headers)
    assert reply.status == status and acts.calls == []
    if status == 401:
        assert dict(reply.headers)[b"www-authenticate"].startswith(b"Bearer")


@pytest.mark.parametrize(
    ("action", "body", "status", "said"),
    [
        ("explode", b"", 404, "no action 'explode'"),
        ("promote", b"[1]", 400, "JSON object"),
        ("promote", b"{", 400, "not JSON"),
        ("promote", b'{"full": "yes"}', 400, "'full' must be a bool"),
        ("pause", b'{"full": true}', 400, "pause takes no 'full'"),
        ("abort", json.dumps({"reason": "x" * 501}).encode(), 400, "'reason' must be a str"),
    ],
)
def test_bad_requests_are_4xx_and_do_nothing(
    action: str, body: bytes, status: int, said: str
) -> None:
    acts = Actions()
    reply = post(Admin(acts, TOKEN), action, body)
    assert reply.status == status and said in reply.body.decode()
    assert acts.calls == []


def test_an_action_the_rollout_refuses_is_409_with_its_reason() -> None:
    reply = post(Admin(Actions(refuse="no rollout is on in production"), TOKEN), "promote")
    assert reply.status == 409
    assert "no rollout is on" in reply.body.decode() and "conveyor deploy" in reply.body.decode()


def test_a_server_without_actions_says_where_to_steer() -> None:
    reply = post(Admin(None, TOKEN), "promote")
    assert reply.status == 404 and "conveyor serve --env" in reply.body.decode()
