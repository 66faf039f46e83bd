"""Following an environment's deployment record, step by step: real versions of ``clf`` loaded
into real slots, the record read through an injected reader, what is said and what is held."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from conveyor.registry.deployment import Deployment
from conveyor.serve.errors import CannotServe
from conveyor.serve.follow import DeploymentFollower, deployment_state, stored_deployment
from conveyor.serve.metrics import Metrics
from conveyor.serve.predictor import Role
from conveyor.serve.router import Router
from conveyor.serve.served import Served

FIRST = Deployment("production", "clf", stable=1, status="promoted", revision=1)
CANARY = Deployment(
    "production", "clf", stable=1, candidate=2, status="progressing", weight=10, revision=2
)


class Env:
    """A follower over real slots, its record set by the test, what it said."""

    def __init__(self, root: Path, record: Deployment | None) -> None:
        self.root = root
        self.record = record
        self.fail: Exception | None = None
        self.said: list[str] = []
        self.metrics = Metrics()
        self.made: list[Served] = []
        self.router = Router(self.make("models:/clf@production", "stable"), metrics=self.metrics)
        self.follower = DeploymentFollower(
            self.router,
            root=root,
            env="production",
            model="clf",
            make=self.make,
            interval=3600,
            notify=self.said.append,
            read=self.read,
        )

    def make(self, uri: str, role: Role) -> Served:
        served = Served(uri, self.root, self.metrics, role=role)
        self.made.append(served)
        return served

    def read(self, root: Path, env: str) -> Deployment | None:
        if self.fail is not None:
            raise self.fail
        return self.record

    async def settle(self) -> None:
        """Read the record once and wait for what it started loading."""
        await self.follower.step()
        loader = self.follower._loader
        if loader is not None:
            await asyncio.wait_for(loader, timeout=60)


def follow(root: Path, record: Deployment | None, check: Callable[[Env], Awaitable[None]]) -> None:
    async def main() -> None:
        env = Env(root, record)
        try:
            await asyncio.wait_for(check(env), timeout=120)
        finally:
            env.follower.close()

    asyncio.run(main())


def test_the_first_load_the_split_and_what_is_said_once(registered: Path) -> None:
    async def check(env: Env) -> None:
        assert await env.follower.first() is None
        assert env.router.version == "1" and env.router.candidate is None
        env.record = CANARY
        for _ in range(3):
            await env.settle()
        candidate = env.router.candidate
        assert candidate is not None and candidate.version == "2"
        assert candidate.uri == "models:/clf/2" and candidate.role == "candidate"
        assert env.router.routing.weight == 10
        said = [s for s in env.said if s.startswith("production: progressing")]
        assert said == ["production: progressing, stable 1, candidate 2 (canary, 10 %)"]
        assert "production: version 2 loaded as candidate" in env.said

    follow(registered, FIRST, check)


def test_a_record_that_cannot_be_read_keeps_what_is_served(registered: Path) -> None:
    async def check(env: Env) -> None:
        assert await env.follower.first() is None
        env.record = CANARY
        await env.settle()
        env.fail = OSError("the disk went away")
        for _ in range(3):
            assert await env.follower.step() == CANARY  # the last record read
        assert env.router.routing.weight == 10
        failures = [s for s in env.said if "cannot read the deployment" in s]
        assert failures == [
            "cannot read the deployment of production (serving as before): the disk went away"
        ]

    follow(registered, FIRST, check)


def test_a_failed_candidate_is_tried_again_when_the_record_moves(registered: Path) -> None:
    async def check(env: Env) -> None:
        assert await env.follower.first() is None
        env.record = CANARY.but(candidate=99)
        await env.settle()
        await env.settle()
        assert env.follower.failed.keys() == {"99"}
        assert env.router.routing.weight == 0
        assert env.metrics.reloads == {("clf", "candidate", "failed"): 1}  # once, not per read
        env.record = env.record.but(candidate=2)
        await env.settle()
        assert env.follower.candidate_error is None
        assert env.router.routing.weight == 10 and env.router.candidate is not None
        assert env.router.candidate.version == "2"

    follow(registered, FIRST, check)


def test_a_record_for_another_model_is_ignored(registered: Path) -> None:
    async def check(env: Env) -> None:
        assert await env.follower.first() is None
        env.record = Deployment("production", "other", stable=3, status="promoted", revision=5)
        await env.settle()
        assert env.router.version == "1"
        assert "environment production deploys model other, not clf: ignored" in env.said

    follow(registered, FIRST, check)


def test_only_stable_previous_and_candidate_versions_are_held(registered: Path) -> None:
    async def check(env: Env) -> None:
        assert await env.follower.first() is None
        env.record = CANARY
        await env.settle()
        env.record = CANARY.but(status="promoted", stable=2, candidate=None, previous=1)
        await env.settle()
        assert env.router.version == "2" and set(env.follower.kept) == {"1"}
        env.record = env.record.but(previous=None)
        await env.settle()
        assert env.follower.kept == {}

    follow(registered, FIRST, check)


def test_the_deployment_state_of_an_unknown_environment_is_none(registered: Path) -> None:
    assert deployment_state(registered, "nowhere", lambda root, env: None) is None


def test_a_store_that_cannot_read_deployments_says_so(
    registered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import conveyor.registry.stored as stored

    monkeypatch.delattr(stored, "deployment", raising=False)
    with pytest.raises(CannotServe, match="cannot read deployment records"):
        stored_deployment(registered, "production")
