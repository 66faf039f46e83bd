"""The ASGI app in process, through httpx's ASGI transport: routes, errors, both protocols,
role-labelled metrics, two versions of one model side by side, and following an alias."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.monitor import predlog
from conveyor.serve.app import App
from conveyor.serve.follow import Swap
from conveyor.serve.options import Options
from tests.serve.conftest import cli, features

X = features(8, seed=1)
TRUTH = (X[:, 0] > 0).astype(int).tolist()  # version 1
FLIPPED = [1 - v for v in TRUTH]  # version 2
BOTH = ["models:/clf/1", "models:/clf/2"]

Check = Callable[[httpx.AsyncClient, App], Awaitable[None]]


def serve(uris: list[str], root: Path, check: Check, *, start: bool = True, **options: Any) -> None:
    """Run ``check`` against an app serving ``uris`` (loaded first, unless ``start`` is False)."""

    async def main() -> None:
        app = App(uris, root=root, options=Options(**{"reload_interval": 3600, **options}))
        if start:
            app.start()
        try:
            while start and not app.ready:
                assert app.failed is None, app.failed
                await asyncio.sleep(0.01)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                await check(client, app)
        finally:
            app.stop()

    asyncio.run(main())


def tensor(rows: Any, name: str = "input") -> dict[str, Any]:
    return {
        "name": name,
        "shape": list(rows.shape),
        "datatype": "FP64",
        "data": rows.ravel().tolist(),
    }


def infer_body(rows: Any = X, **extra: Any) -> dict[str, Any]:
    return {"inputs": [tensor(rows)], **extra}


def samples(text: str, family: str) -> list[dict[str, str]]:
    found = {f.name: f for f in text_string_to_metric_families(text)}
    return [dict(s.labels) for s in found[family].samples]


def test_two_versions_of_one_model_answer_side_by_side(registered: Path) -> None:
    async def check(client: httpx.AsyncClient, app: App) -> None:
        for version, truth in (("1", TRUTH), ("2", FLIPPED)):
            path = f"/v2/models/clf/versions/{version}"
            got = await client.post(path + "/infer", json=infer_body())
            assert got.status_code == 200, got.text
            assert got.headers["x-model-version"] == version
            assert got.json()["model_version"] == version
            assert got.json()["outputs"][0]["data"] == truth
            meta = (await client.get(path)).json()
            assert meta["versions"] == [version] and meta["platform"] == "conveyor-sklearn"
            ready = await client.get(path + "/ready")
            assert ready.status_code == 200 and ready.json() == {"name": "clf", "ready": True}
        # A request naming no version, and MLflow's /invocations, get the first one served.
        got = await client.post("/v2/models/clf/infer", json=infer_body())
        assert got.headers["x-model-version"] == "1"
        got = await client.post("/invocations", json={"inputs": X.tolist()})
        assert got.json() == {"predictions": TRUTH} and got.headers["x-model-version"] == "1"
        missing = await client.post("/v2/models/clf/versions/7/infer", json=infer_body())
        assert missing.status_code == 404
        assert "no version 7" in missing.json()["error"]
        assert "serving version(s): 1, 2" in missing.json()["error"]

    serve(BOTH, registered, check)


def test_every_per_model_metric_carries_model_version_and_role(registered: Path) -> None:
    async def check(client: httpx.AsyncClient, app: App) -> None:
        for version in ("1", "2"):
            path = f"/v2/models/clf/versions/{version}/infer"
            assert (await client.post(path, json=infer_body())).status_code == 200
        assert (await client.post(path, content=b"{oops")).status_code == 400
        text = (await client.get("/metrics")).text
        requests = {
            (s["model"], s["version"], s["role"], s["endpoint"], s["status"])
            for s in samples(text, "conveyor_requests")
        }
        assert requests == {
            ("clf", "1", "stable", "infer", "200"),
            ("clf", "2", "stable", "infer", "200"),
            ("clf", "2", "stable", "infer", "400"),  # refused before the model: the path's
        }
        batches = {(s["version"], s["role"]) for s in samples(text, "conveyor_batch_size")}
        assert batches == {("1", "stable"), ("2", "stable")}
        latency = samples(text, "conveyor_request_duration_seconds")
        assert {(s["version"], s["role"]) for s in latency} == {("1", "stable"), ("2", "stable")}
        info = {(s["uri"], s["version"], s["role"]) for s in samples(text, "conveyor_model_info")}
        assert info == {("models:/clf/1", "1", "stable"), ("models:/clf/2", "2", "stable")}

    serve(BOTH, registered, check)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/nowhere", None, 404, "no endpoint /nowhere (hint: see GET /openapi.json"),
        ("GET", "/v2/models/clf/bogus", None, 404, "no endpoint /v2/models/clf/bogus"),
        ("POST", "/v2/models/nope/infer", b"{}", 404, "no model 'nope' is served here"),
        ("GET", "/v2/models/clf/infer", None, 405, "use POST here, not GET"),
        ("GET", "/v2/models/nope/infer", None, 404, "no model 'nope' is served here"),
        ("POST", "/v2/models/clf/versions/7", b"{}", 404, "no version 7 served here"),
        ("PUT", "/metrics", b"", 405, "use GET here, not PUT"),
        ("POST", "/v2/models/clf/infer", b"x" * 2000, 413, "at most 1000 bytes"),
        ("POST", "/v2/models/clf/infer", b"{oops", 400, "not JSON"),
    ],
)
def test_v2_errors(
    registered: Path, method: str, path: str, body: bytes | None, status: int, message: str
) -> None:
    async def check(client: httpx.AsyncClient, app: App) -> None:
        got = await client.request(method, path, content=body)
        assert got.status_code == status
        assert message in got.json()["error"]
        assert got.headers["x-model-version"] == "1" and len(got.headers["x-request-id"]) == 32
        if status == 405:
            assert got.headers["allow"] == ("POST" if "infer" in path else "GET, HEAD")

    serve(["models:/clf/1"], registered, check, max_body_bytes=1000)


def test_values_the_model_cannot_take_are_refused_before_it(registered: Path) -> None:
    # Unprocessable values are 400s, as the OIP v2 and MLflow servers answer them.
    async def check(client: httpx.AsyncClient, app: App) -> None:
        got = await client.post("/v2/models/clf/infer", json=infer_body(X[:, :2]))
        assert got.status_code == 400 and "the model takes [-1, 3]" in got.json()["error"]
        got = await client.post("/v2/models/clf/infer", json=infer_body(outputs=[{"name": "p"}]))
        assert got.status_code == 400 and "has no output p" in got.json()["error"]
        got = await client.post("/invocations", json={"inputs": [[0.0, 0.0, 0.0]] * 6})
        assert got.status_code == 413 and "at most 5" in got.json()["message"]
        got = await client.post("/invocations", content=b"a=1", headers={"content-type": "x/y"})
        assert got.status_code == 415 and got.json()["error_code"] == "BAD_REQUEST"
        got = await client.get("/invocations")
        assert got.status_code == 405 and got.headers["allow"] == "POST"
        assert got.json()["error_code"] == "BAD_REQUEST"  # MLflow's error body on its paths

    serve(["models:/clf/1"], registered, check, max_rows=5)


def test_invocations_are_answered_and_logged_by_request_id(
    registered: Path, tmp_path: Path
) -> None:
    async def check(client: httpx.AsyncClient, app: App) -> None:
        csv = "a,b,c\n" + "\n".join(",".join(str(v) for v in row) for row in X.tolist())
        got = await client.post(
            "/invocations",
            content=csv.encode(),
            headers={"content-type": "text/csv", "x-request-id": "mine-1"},
        )
        assert got.status_code == 200 and got.json() == {"predictions": TRUTH}
        assert got.headers["x-request-id"] == "mine-1"
        got = await client.post("/v2/models/clf/infer", json=infer_body(id="body-id"))
        assert got.headers["x-request-id"] == "body-id" and got.json()["id"] == "body-id"

    serve(["models:/clf/1"], registered, check, log_dir=str(tmp_path))
    records = {r["id"]: r for r in predlog.read(tmp_path, "clf")}
    assert records.keys() == {"mine-1", "body-id"}
    assert records["mine-1"]["endpoint"] == "invocations" and records["mine-1"]["version"] == "1"
    assert records["mine-1"]["outputs"] == TRUTH and records["body-id"]["endpoint"] == "infer"


def test_server_endpoints_and_head(registered: Path) -> None:
    async def check(client: httpx.AsyncClient, app: App) -> None:
        for path in ("/v2/health/live", "/v2/health/ready", "/ping", "/health", "/version"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/v2")).json()["name"] == "conveyor"
        assert (await client.head("/v2/models/clf")).status_code == 200
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert "/v2/models/{name}/versions/{version}/infer" in paths

    serve(["models:/clf/1"], registered, check)


def test_a_model_still_loading_is_not_ready(registered: Path) -> None:
    async def check(client: httpx.AsyncClient, app: App) -> None:
        assert (await client.get("/v2/health/ready")).status_code == 503
        assert (await client.get("/ping")).status_code == 503
        got = await client.get("/v2/models/clf/ready")
        assert got.status_code == 503 and got.json() == {"name": "clf", "ready": False}
        got = await client.post("/v2/models/clf/infer", json=infer_body())
        assert got.status_code == 503 and "still loading" in got.json()["error"]

    serve(["models:/clf/1"], registered, check, start=False)


def test_an_alias_is_followed_by_applying_the_difference(registered: Path) -> None:
    async def check(client: httpx.AsyncClient, app: App) -> None:
        assert await app.follower.step() == []  # nothing moved
        cli(registered, "models", "alias", "clf@production", "2")
        try:
            assert await app.follower.step() == [Swap("models:/clf@production", "2", "1")]
        finally:
            cli(registered, "models", "alias", "clf@production", "1")
        got = await client.post("/v2/models/clf/infer", json=infer_body())
        assert got.json()["outputs"][0]["data"] == FLIPPED
        assert got.headers["x-model-version"] == "2"
        text = (await client.get("/metrics")).text
        reloads = samples(text, "conveyor_model_reloads")
        assert [(s["role"], s["result"]) for s in reloads] == [("stable", "loaded")]
        (info,) = samples(text, "conveyor_model_info")
        assert (info["version"], info["role"]) == ("2", "stable")

    serve(["models:/clf@production"], registered, check)


def test_the_request_path_imports_neither_sqlalchemy_nor_the_training_stack(
    registered: Path,
) -> None:
    # pandas: not before the model loads (scikit-learn imports it itself when it is installed).
    code = f"""
import asyncio, json, sys
from pathlib import Path
import httpx
from conveyor.serve.app import App

HEAVY = {{"sqlalchemy", "pandas", "optuna", "conveyor.pipeline", "conveyor.tune"}}

async def main():
    app = App(["models:/clf@production"], root=Path({str(registered)!r}))
    before = sorted(HEAVY & set(sys.modules))
    app.start()
    while not app.ready:
        assert app.failed is None, app.failed
        await asyncio.sleep(0.01)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
        got = await client.post("/invocations", json={{"inputs": [[0.5, 0.0, 0.0]]}})
        assert got.status_code == 200, got.text
        await app.follower.step()
    app.stop()
    return before

before = asyncio.run(main())
print(json.dumps([before, sorted((HEAVY - {{"pandas"}}) & set(sys.modules))]))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=registered, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[], []]
