"""The rollout actions a server answers at ``POST /deployments/{env}/{action}``
(:mod:`conveyor.serve.admin`), and the worker factory of ``conveyor serve --env`` that gives
them to it: the serving layer does not reach up into this one, it is handed the actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from conveyor.deploy import flows
from conveyor.serve.app import App
from conveyor.serve.server import from_environment as serving_app

FACTORY = "conveyor.deploy.admin:from_environment"


def actions(root: Path) -> Callable[[str, str, dict[str, Any]], dict[str, Any]]:
    """``(env, action, options) -> record`` for the project at ``root``; a DeployError (a
    ConveyorError) for what the rollout refuses."""

    def act(env: str, action: str, options: dict[str, Any]) -> dict[str, Any]:
        if action == "promote":
            record = flows.promote(root, env, full=bool(options.get("full")))
        elif action == "abort":
            record = flows.abort(root, env, str(options.get("reason") or "aborted over HTTP"))
        elif action == "pause":
            record = flows.pause(root, env)
        elif action == "resume":
            record = flows.resume(root, env)
        elif action == "rollback":
            record = flows.rollback(root, env)
        else:
            raise ValueError(f"no action {action}")
        return asdict(record)

    return act


def from_environment() -> App:
    """A worker's app, as :func:`conveyor.serve.server.from_environment` makes it, with the
    rollout actions (uvicorn's factory for ``conveyor serve --env``)."""
    return serving_app(actions)
