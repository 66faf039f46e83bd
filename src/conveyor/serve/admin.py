"""``POST /deployments/{env}/{action}``: steer an environment's rollout over HTTP, as
``conveyor rollout promote|pause|resume|abort`` and ``conveyor rollback`` do from a terminal.

    POST /deployments/production/promote    {"full": true}        (body optional)
    POST /deployments/production/abort      {"reason": "..."}     (body optional)
    POST /deployments/production/pause | resume | rollback
    Authorization: Bearer <token>
    -> 200 the record as GET /deployments/{env} shows it

It changes what answers requests, so it needs the server's token (``--feedback-token`` or
``CONVEYOR_ADMIN_TOKEN``, as ``POST /feedback``): 401 without it, 403 when the server has none.
An action the rollout's state refuses (promote with no rollout on) is 409 with the reason.

The actions themselves are the deploy layer's (``conveyor.deploy.admin`` gives them to the
server ``conveyor serve --env`` starts); a server given none answers 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from conveyor.foundation.errors import ConveyorError
from conveyor.serve.errors import NotFound, RequestError
from conveyor.serve.exchange import Reply, Request, as_json, error, read_body
from conveyor.serve.feedback import CHALLENGE, Unauthorized, authorize

ACTIONS = ("promote", "pause", "resume", "abort", "rollback")
_OPTIONS: dict[str, dict[str, type]] = {"promote": {"full": bool}, "abort": {"reason": str}}
MAX_BODY_BYTES = 4096

# (env, action, options) -> the record after it; blocking (run in a thread); raises
# ConveyorError for an action the rollout refuses
Act = Callable[[str, str, dict[str, Any]], dict[str, Any]]


class Refused(RequestError):
    status = 409
    code = "FAILED_PRECONDITION"


class Admin:
    def __init__(self, act: Act | None, token: str | None) -> None:
        self.act = act
        self.token = token

    async def __call__(self, request: Request) -> Reply:
        env, action = request.params["env"], request.params["action"]
        try:
            authorize(request.headers.get(b"authorization"), self.token, "steering a rollout")
            if action not in ACTIONS:
                raise NotFound(f"no action {action!r}", hint=f"one of {', '.join(ACTIONS)}")
            if self.act is None:
                raise NotFound(
                    "this server does not steer rollouts",
                    hint="`conveyor serve --env ENV` does, or use `conveyor rollout`",
                )
            options = _options(await read_body(request, MAX_BODY_BYTES), action)
            try:
                record = await asyncio.to_thread(self.act, env, action, options)
            except RequestError:
                raise
            except ConveyorError as exc:
                raise Refused(exc.message, hint=exc.hint) from exc
        except Unauthorized as exc:
            return error(exc, scoring_body=False)._replace(headers=CHALLENGE)
        except RequestError as exc:
            return error(exc, scoring_body=False)
        return as_json(record)


def _options(body: bytes, action: str) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RequestError("the body must be a JSON object", hint='e.g. {"full": true}')
    allowed: dict[str, type] = _OPTIONS.get(action, {})
    for key, value in doc.items():
        kind = allowed.get(key)
        if kind is None:
            known = ", ".join(allowed) or "none"
            raise RequestError(f"{action} takes no {key!r}", hint=f"it takes: {known}")
        if not isinstance(value, kind) or (isinstance(value, str) and len(value) > 500):
            raise RequestError(f"{key!r} must be a {kind.__name__} (short, for a reason)")
    return doc
