"""An environment served in process (httpx's ASGI transport): two real fitted versions of
``clf`` (version 2 answers the opposite of version 1), a deployment record the test changes
while requests flow, and what the server answers from one follow interval on."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.registry.deployment import Deployment
from conveyor.serve.app import App
from conveyor.serve.options import Options
from conveyor.serve.router import STABLE_ONLY
from tests.serve.test_app import FLIPPED, TRUTH, infer_body, samples

INTERVAL = 0.05  # seconds between reads of the record
FIRST = Deployment("production", "clf", stable=1, status="promoted", revision=1)
CANARY = Deployment(
    "production", "clf", stable=1, candidate=2, status="progressing", weight=50, revision=2
)
ANSWERS = {"1": TRUTH, "2": FLIPPED}


class Records:
    """The store's records as the test sets them: what the app's reader returns."""

    def __init__(self, record: Deployment | None) -> None:
        self.records = {"production": record}
        self.reads = 0

    def set(self, record: Deployment | None) -> None:
        self.records["production"] = record

    def read(self, root: Path, env: str) -> Deployment | None:
        self.reads += 1
        return self.records.get(env)


Check = Callable[[httpx.AsyncClient, App, Records], Awaitable[None]]


def serve_env(root: Path, record: Deployment | None, check: Check, **options: Any) -> None:
    records = Records(record)

    async def main() -> None:
        opts = Options(**{"deploy_interval": INTERVAL, **options})
        app = App(
            [], root=root, options=opts, env="production", model="clf", read_deployment=records.read
        )
        app.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                await asyncio.wait_for(check(client, app, records), timeout=120)
        finally:
            app.stop()

    asyncio.run(main())


async def until(condition: Callable[[], bool], seconds: float = 60) -> float:
    """Wait for ``condition``; how long it took."""
    start = time.perf_counter()
    while not condition():
        assert time.perf_counter() - start < seconds, "timed out"
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


async def infer(client: httpx.AsyncClient, rid: str, **headers: str) -> tuple[str, str]:
    """Which version answered, and in which role; the answer is that version's."""
    got = await client.post(
        "/v2/models/clf/infer", json=infer_body(), headers={"x-request-id": rid, **headers}
    )
    assert got.status_code == 200, got.text
    version = got.headers["x-model-version"]
    assert got.json()["outputs"][0]["data"] == ANSWERS[version]
    assert got.json()["model_version"] == version
    return version, got.headers["x-model-role"]


async def spread(client: httpx.AsyncClient, n: int, prefix: str = "r") -> Counter[tuple[str, str]]:
    return Counter([await infer(client, f"{prefix}-{i}") for i in range(n)])


def candidate_loaded(app: App) -> Callable[[], bool]:
    def loaded() -> bool:
        assert app.deployer is not None
        candidate = app.deployer.router.candidate
        return candidate is not None and candidate.ready and app.deployer.router.routing.weight > 0

    return loaded


def test_a_canary_is_split_then_aborted_to_stable_within_one_interval(registered: Path) -> None:
    async def check(client: httpx.AsyncClient, app: App, records: Records) -> None:
        await until(lambda: app.ready)
        assert await spread(client, 20) == {("1", "stable"): 20}
        records.set(CANARY)
        await until(candidate_loaded(app))
        got = await spread(client, 400)
        assert set(got) == {("1", "stable"), ("2", "candidate")}
        assert 150 <= got[("2", "candidate")] <= 250  # 50 % of 400, binomial sd 10
        # A retried request (the same x-request-id) is answered by the same version.
        assert {await infer(client, "retried") for _ in range(10)} == {
            await infer(client, "retried")
        }
        # Metrics, by version and role.
        text = (await client.get("/metrics")).text
        requests = {(s["version"], s["role"]) for s in samples(text, "conveyor_requests")}
        assert {("1", "stable"), ("2", "candidate")} <= requests
        (weight,) = samples(text, "conveyor_deployment_weight")
        assert weight == {"env": "production", "model": "clf"}
        # The whole split moves at the next read; no load is needed.
        records.set(CANARY.but(weight=100))
        waited = await until(
            lambda: app.deployer is not None and app.deployer.router.routing.weight == 100
        )
        assert waited < 10 * INTERVAL
        assert await spread(client, 20, "all") == {("2", "candidate"): 20}
        # Abort: stable answers everything from the next read on; the candidate stays loaded.
        records.set(CANARY.but(weight=100, status="aborted").but())
        waited = await until(
            lambda: app.deployer is not None and app.deployer.router.routing == STABLE_ONLY
        )
        assert waited < 10 * INTERVAL
        assert await spread(client, 50, "after") == {("1", "stable"): 50}
        direct = await client.post("/v2/models/clf/versions/2/infer", json=infer_body())
        assert direct.status_code == 200 and direct.json()["outputs"][0]["data"] == FLIPPED
        assert direct.headers["x-model-role"] == "candidate"
        state = (await client.get("/deployments/production")).json()
        assert state["status"] == "aborted" and state["serving"]["weight"] == 0
        assert state["serving"]["candidate"] == "2"

    serve_env(registered, FIRST, check)


def test_a_promotion_and_a_rollback_switch_at_once_without_loading(registered: Path) -> None:
    async def check(client: httpx.AsyncClient, app: App, records: Records) -> None:
        await until(lambda: app.ready)
        records.set(CANARY.but(weight=10))
        await until(candidate_loaded(app))
        promoted = CANARY.but(status="promoted", stable=2, candidate=None, previous=1, weight=0)
        records.set(promoted)
        await until(lambda: app.catalog.default is not None and app.catalog.default.version == "2")
        assert await spread(client, 20) == {("2", "stable"): 20}
        assert app.deployer is not None and app.deployer.router.candidate is None
        text = (await client.get("/metrics")).text
        info = {(s["uri"], s["version"], s["role"]) for s in samples(text, "conveyor_model_info")}
        assert info == {("models:/clf@production", "2", "stable")}  # the candidate's is gone
        rolled = promoted.but(status="rolled_back", stable=1, previous=2)
        records.set(rolled)
        waited = await until(
            lambda: app.catalog.default is not None and app.catalog.default.version == "1"
        )
        assert waited < 10 * INTERVAL  # the previous version was kept loaded: a swap
        assert await spread(client, 20, "back") == {("1", "stable"): 20}
        reloads = samples((await client.get("/metrics")).text, "conveyor_model_reloads")
        assert {(s["role"], s["result"]) for s in reloads} == {
            ("stable", "loaded"),
            ("candidate", "loaded"),
        }

    serve_env(registered, FIRST, check)


def test_a_candidate_that_cannot_load_leaves_stable_answering_and_says_why(
    registered: Path,
) -> None:
    async def check(client: httpx.AsyncClient, app: App, records: Records) -> None:
        await until(lambda: app.ready)
        records.set(CANARY.but(candidate=99, weight=90))
        deployer = app.deployer
        assert deployer is not None
        await until(lambda: deployer.candidate_error is not None)
        assert "99" in deployer.candidate_error  # type: ignore[operator]
        assert await spread(client, 30) == {("1", "stable"): 30}
        state = (await client.get("/deployments/production")).json()
        assert state["candidate"] == 99 and state["serving"]["weight"] == 0
        assert "did not load" in state["serving"]["candidate_error"]
        reloads = samples((await client.get("/metrics")).text, "conveyor_model_reloads")
        assert {(s["role"], s["result"]) for s in reloads} == {("candidate", "failed")}
        assert deployer.router.routing == STABLE_ONLY

    serve_env(registered, FIRST, check)


def test_shadow_copies_are_compared_and_never_answer(registered: Path) -> None:
    async def check(client: httpx.AsyncClient, app: App, records: Records) -> None:
        await until(lambda: app.ready)
        records.set(CANARY.but(mode="shadow", weight=0))
        deployer = app.deployer
        assert deployer is not None
        await until(lambda: deployer.router.routing.copy == 100)
        assert await spread(client, 30) == {("1", "stable"): 30}
        await until(lambda: not deployer.router.copies)
        text = (await client.get("/metrics")).text
        compared = {s["result"]: s for s in samples(text, "conveyor_shadow_comparisons")}
        assert set(compared) == {"disagree"}  # version 2 answers the opposite, every row
        families = {
            (s["version"], s["role"], s["endpoint"]) for s in samples(text, "conveyor_requests")
        }
        assert ("2", "shadow", "shadow") in families
        (info,) = samples(text, "conveyor_deployment_info")
        assert (info["mode"], info["candidate"]) == ("shadow", "2")

    serve_env(registered, FIRST, check)


def test_ab_keeps_each_user_on_one_version(registered: Path) -> None:
    ab = CANARY.but(mode="ab", sticky="header:x-user-id", weight=50)

    async def check(client: httpx.AsyncClient, app: App, records: Records) -> None:
        await until(lambda: app.ready)
        records.set(ab)
        await until(candidate_loaded(app))
        sides: dict[str, set[tuple[str, str]]] = {}
        for user in range(40):
            for attempt in range(3):
                answer = await infer(client, f"u{user}-{attempt}", **{"x-user-id": f"user-{user}"})
                sides.setdefault(f"user-{user}", set()).add(answer)
        assert all(len(s) == 1 for s in sides.values())
        assert {next(iter(s)) for s in sides.values()} == {("1", "stable"), ("2", "candidate")}
        got = await client.post(
            "/invocations", json={"inputs": [[0.5, 0.0, 0.0]]}, headers={"x-user-id": "user-3"}
        )
        assert (got.headers["x-model-version"], got.headers["x-model-role"]) == next(
            iter(sides["user-3"])
        )

    serve_env(registered, FIRST, check)


def test_without_a_deployment_the_server_waits_unready(registered: Path) -> None:
    async def check(client: httpx.AsyncClient, app: App, records: Records) -> None:
        await until(lambda: records.reads >= 3)
        got = await client.post("/v2/models/clf/infer", json=infer_body())
        assert got.status_code == 503
        assert "environment production has no deployment yet" in got.json()["error"]
        assert (await client.get("/v2/health/ready")).status_code == 503
        assert (await client.get("/deployments/production")).status_code == 404
        records.set(FIRST)
        await until(lambda: app.ready)
        assert await spread(client, 5) == {("1", "stable"): 5}
        assert app.failed is None

    serve_env(registered, None, check)


def test_a_stable_version_that_cannot_load_stops_the_start(registered: Path) -> None:
    async def check(client: httpx.AsyncClient, app: App, records: Records) -> None:
        await until(lambda: app.failed is not None)
        assert "cannot load clf version 42" in (app.failed or "")

    serve_env(registered, FIRST.but(stable=42), check)


def test_deployments_endpoint_reads_the_record_and_its_last_analysis(registered: Path) -> None:
    from conveyor.tracking import events
    from conveyor.tracking.db import opened

    checks = [{"metric": "error_rate", "verdict": "pass"}]
    with opened(registered) as store, store.engine.begin() as conn:
        events.append(conn, "rollout.analysis", "deploy:production", {"verdict": "fail", "step": 0})
        events.append(conn, "rollout.step", "deploy:production", {"weight": 50})
        events.append(
            conn,
            "rollout.analysis",
            "deploy:production",
            {"checks": checks, "verdict": "pass", "step": 1},
        )
        events.append(conn, "rollout.analysis", "deploy:staging", {"verdict": "fail"})

    async def check(client: httpx.AsyncClient, app: App, records: Records) -> None:
        await until(lambda: app.ready)
        got = await client.get("/deployments/production")
        assert got.status_code == 200
        state = got.json()
        assert {k: state[k] for k in ("env", "model", "stable", "candidate", "status")} == {
            "env": "production",
            "model": "clf",
            "stable": 1,
            "candidate": 2,
            "status": "progressing",
        }
        assert (state["mode"], state["step"], state["weight"]) == ("canary", 0, 50)
        assert state["revision"] == 2 and state["message"] == ""
        assert state["analysis"] == {"checks": checks, "verdict": "pass", "step": 1}
        assert state["verdict"] == "pass"
        missing = await client.get("/deployments/nowhere")
        assert missing.status_code == 404
        assert "no deployment of environment 'nowhere'" in missing.json()["error"]

    serve_env(registered, CANARY, check)


@pytest.mark.parametrize("given", [{"uris": ["models:/clf/1"]}, {"model": None}])
def test_an_environment_needs_its_model_and_no_uris(
    registered: Path, given: dict[str, Any]
) -> None:
    from conveyor.serve.errors import CannotServe

    kw: dict[str, Any] = {"uris": [], "model": "clf", **given}
    with pytest.raises(CannotServe, match="serving environment production needs"):
        App(kw.pop("uris"), root=registered, env="production", **kw)


def test_serving_an_environment_imports_neither_sqlalchemy_nor_the_training_stack(
    registered: Path,
) -> None:
    code = f"""
import asyncio, json, sys
from pathlib import Path
import httpx
from conveyor.registry.deployment import Deployment
from conveyor.serve.app import App
from conveyor.serve.options import Options

HEAVY = {{"sqlalchemy", "optuna", "conveyor.pipeline", "conveyor.tune", "conveyor.deploy"}}
RECORD = Deployment("production", "clf", stable=1, candidate=2, status="progressing", weight=50)

async def main():
    app = App([], root=Path({str(registered)!r}), env="production", model="clf",
              options=Options(deploy_interval=0.01), read_deployment=lambda root, env: RECORD)
    app.start()
    while not (app.ready and app.deployer.router.routing.weight):
        assert app.failed is None, app.failed
        await asyncio.sleep(0.01)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
        for i in range(10):
            got = await client.post("/invocations", json={{"inputs": [[0.5, 0.0, 0.0]]}})
            assert got.status_code == 200, got.text
        got = await client.get("/deployments/production")
        assert got.status_code == 200, got.text
    app.stop()

asyncio.run(main())
print(json.dumps(sorted(HEAVY & set(sys.modules))))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=registered, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_an_environment_follows_the_record_the_store_holds(tmp_path: Path) -> None:
    """The default reader: records saved in the project's store, as the controller saves them
    (own project: the alias moves with the record)."""
    deployments = pytest.importorskip("conveyor.registry.deployments")
    from conveyor.tracking.db import opened
    from tests.serve.conftest import make_project

    root = make_project(tmp_path / "proj")

    def save(record: Deployment, expected: int | None) -> Deployment:
        with opened(root) as store:
            saved: Deployment = deployments.save(store, record, [], expected=expected)
        return saved

    first = save(Deployment("staging", "clf", stable=1, status="promoted"), None)

    async def check(client: httpx.AsyncClient, app: App) -> None:
        await until(lambda: app.ready)
        assert await spread(client, 5) == {("1", "stable"): 5}
        canary = save(first.but(candidate=2, status="progressing", weight=100), first.revision)
        await until(lambda: app.deployer is not None and app.deployer.router.routing.weight == 100)
        assert await spread(client, 5, "c") == {("2", "candidate"): 5}
        aborted = save(canary.but(status="aborted", weight=0), canary.revision)
        await until(lambda: app.deployer is not None and app.deployer.router.routing == STABLE_ONLY)
        assert await spread(client, 5, "a") == {("1", "stable"): 5}
        state = (await client.get("/deployments/staging")).json()
        assert (state["status"], state["candidate"]) == ("aborted", 2)
        assert state["revision"] == aborted.revision

    async def main() -> None:
        app = App(
            [], root=root, options=Options(deploy_interval=INTERVAL), env="staging", model="clf"
        )
        app.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                await asyncio.wait_for(check(client, app), timeout=120)
        finally:
            app.stop()

    asyncio.run(main())
