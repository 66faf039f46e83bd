"""`conveyor serve` as a real process on loopback, spoken to by real clients: tritonclient for
the Open Inference Protocol v2, plain HTTP with MLflow's payloads, under concurrent load."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conveyor.monitor import predlog
from tests.serve.conftest import Server, features

X = features(8, seed=1)
TRUTH = (X[:, 0] > 0).astype(int)  # version 1 learned x0 > 0 on separable data


@pytest.fixture(scope="module")
def server(registered: Path) -> Iterator[Server]:
    srv = Server(
        registered,
        "models:/clf@production",
        "--max-body-mb", "0.01",
        "--max-rows", "50",
        "--log-dir", str(registered / "plog"),
    )  # fmt: skip
    yield srv
    srv.stop()


def test_tritonclient_speaks_to_it(server: Server) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("clf") and client.is_model_ready("clf", "1")
        meta = client.get_model_metadata("clf")
        assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 3]}]
        assert meta["versions"] == ["1"]
        assert client.get_server_metadata()["name"] == "conveyor"
        for binary in (True, False):
            given = triton.InferInput("input", list(X.shape), "FP64")
            given.set_data_from_numpy(X, binary_data=binary)
            result = client.infer("clf", [given], request_id=f"tc-{binary}")
            assert result.as_numpy("output").tolist() == TRUTH.tolist()
            assert result.get_response()["model_version"] == "1"
            assert result.get_response()["id"] == f"tc-{binary}"
        with pytest.raises(InferenceServerException, match="no model 'nope'"):
            client.infer("nope", [given])
        with pytest.raises(InferenceServerException, match="no version 7"):
            client.infer("clf", [given], model_version="7")
        wrong = triton.InferInput("input", [1, 2], "FP64")
        wrong.set_data_from_numpy(np.zeros((1, 2)))
        with pytest.raises(InferenceServerException, match=r"the model takes \[-1, 3\]"):
            client.infer("clf", [wrong])
    finally:
        client.close()


@pytest.mark.parametrize(
    "doc",
    [
        {"inputs": X.tolist()},
        {"instances": X.tolist()},
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": X.tolist()}},
        {"dataframe_records": [dict(zip("abc", row, strict=True)) for row in X.tolist()]},
    ],
)
def test_mlflow_scoring_payloads(server: Server, doc: object) -> None:
    status, body, headers = server.json("POST", "/invocations", doc)
    assert status == 200, body
    assert body == {"predictions": TRUTH.tolist()}
    assert headers["x-model-version"] == "1" and len(headers["x-request-id"]) == 32


def test_csv_ping_version_and_request_ids(server: Server) -> None:
    csv = "a,b,c\n" + "\n".join(",".join(str(v) for v in row) for row in X.tolist())
    status, body, headers = server.request(
        "POST", "/invocations", csv.encode(), {"Content-Type": "text/csv", "X-Request-Id": "mine-1"}
    )
    assert status == 200 and json.loads(body)["predictions"] == TRUTH.tolist()
    assert headers["x-request-id"] == "mine-1"
    v2 = {
        "id": "body-id",
        "inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": X[0].tolist()}],
    }
    assert server.json("POST", "/v2/models/clf/infer", v2)[2]["x-request-id"] == "body-id"
    _, body, headers = server.json(
        "POST", "/v2/models/clf/infer", v2, headers={"X-Request-Id": "header-id"}
    )
    assert headers["x-request-id"] == "header-id" and body["id"] == "body-id"
    assert server.request("GET", "/ping")[0] == 200
    assert server.request("GET", "/health")[0] == 200
    assert server.request("GET", "/version")[1].strip() != b""


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/v2/models/clf/infer", b"{oops", 400, "not JSON"),
        ("POST", "/v2/models/clf/infer", b'{"inputs": []}', 400, "non-empty list"),
        ("POST", "/v2/models/nope/infer", b'{"inputs": []}', 404, "no model 'nope'"),
        ("GET", "/v2/models/clf/infer", None, 405, "use POST"),
        ("POST", "/v2/models/clf/infer", b"x" * 20_000, 413, "at most 10485 bytes"),
        ("GET", "/nowhere", None, 404, "no endpoint /nowhere"),
    ],
)
def test_v2_errors(
    server: Server, method: str, path: str, body: bytes | None, status: int, message: str
) -> None:
    got, raw, headers = server.request(method, path, body)
    assert got == status
    assert message in json.loads(raw)["error"]
    assert "x-request-id" in headers and "x-model-version" in headers
    if path.startswith("/v2/models/clf/"):  # a failed request is counted like any other
        metrics = server.request("GET", "/metrics")[1].decode()
        assert f'endpoint="infer",status="{status}"' in metrics


def test_mlflow_errors_and_limits(server: Server) -> None:
    status, body, _ = server.json("POST", "/invocations", {"inputs": [[1, 2]]})
    assert status == 400 and body["error_code"] == "BAD_REQUEST"
    assert "the model takes [-1, 3]" in body["message"]
    status, body, _ = server.json("POST", "/invocations", {"inputs": [[0.0, 0.0, 0.0]] * 51})
    assert status == 413 and "at most 50" in body["message"]
    status, raw, _ = server.request("POST", "/invocations", b"a=1", {"Content-Type": "text/x"})
    assert status == 415 and json.loads(raw)["error_code"] == "BAD_REQUEST"


def test_bad_requests_under_concurrent_load_fail_alone(server: Server) -> None:
    good = json.dumps({"inputs": X.tolist()}).encode()
    bad = [
        b'{"inputs": [[1, 2]]}',
        b"{broken",
        b'{"inputs": [["a", "b", "c"]]}',
        b'{"inputs": [[NaN, 1, 2]]}',
    ]

    def call(i: int) -> tuple[bool, int, bytes]:
        is_good = i % 3 != 0
        status, raw, _ = server.request("POST", "/invocations", good if is_good else bad[i % 4])
        return is_good, status, raw

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(400)))
    for is_good, status, raw in results:
        if is_good:
            assert status == 200 and json.loads(raw)["predictions"] == TRUTH.tolist()
        else:
            assert status == 400, raw
    assert server.request("GET", "/v2/health/live")[0] == 200
    metrics = server.request("GET", "/metrics")[1].decode()
    assert (
        'conveyor_requests_total{model="clf",version="1",role="stable",endpoint="invocations",'
        'status="200"}' in metrics
    )
    assert "conveyor_batch_size_bucket" in metrics
    assert 'conveyor_requests_in_flight{model="clf"} 0' in metrics  # every request answered


def test_openapi_document_is_valid_and_lists_every_endpoint(server: Server) -> None:
    from openapi_spec_validator import validate

    status, doc, _ = server.json("GET", "/openapi.json")
    assert status == 200
    validate(doc)
    assert set(doc["paths"]) == {
        "/v2/health/live", "/v2/health/ready", "/v2",
        "/v2/models/{name}", "/v2/models/{name}/ready", "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/versions/{version}/infer",
        "/invocations", "/ping", "/health", "/version", "/metrics", "/openapi.json",
        "/deployments/{env}/{action}",
        "/deployments/{env}", "/feedback",
    }  # fmt: skip
    for path, ops in doc["paths"].items():
        if "{env}" in path:
            continue  # no environment is deployed here: tests/serve/test_app_deploy.py
        concrete = path.replace("{name}", "clf").replace("{version}", "1")
        for method in ops:
            if method == "get":
                assert server.request("GET", concrete)[0] == 200, path


def test_predictions_are_logged_by_request_id(server: Server, registered: Path) -> None:
    status, _, _ = server.json(
        "POST", "/invocations", {"inputs": X[:2].tolist()}, headers={"X-Request-Id": "logged-1"}
    )
    assert status == 200
    deadline = threading.Event()
    for _ in range(60):
        found = [r for r in predlog.read(registered / "plog", "clf") if r["id"] == "logged-1"]
        if found:
            break
        deadline.wait(0.1)
    (record,) = found
    assert record["version"] == "1" and record["endpoint"] == "invocations"
    assert record["inputs"] == X[:2].tolist() and record["outputs"] == TRUTH[:2].tolist()


def infer_body(*inputs: dict[str, object], **extra: object) -> dict[str, object]:
    return {"inputs": list(inputs), **extra}


def row(datatype: str, data: list[object], name: str = "input") -> dict[str, object]:
    return {"name": name, "shape": [1, 3], "datatype": datatype, "data": data}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (infer_body(row("INT8", [300, 0, 0])), "input 'input': 300 is out of the range of INT8"),
        (infer_body(row("UINT8", [-1, 0, 0])), "input 'input': -1 is out of the range of UINT8"),
        (infer_body(row("INT64", [10**20, 0, 0])), "input 'input': 1e+20 is out of the range"),
        (infer_body(row("INT64", [0.5, 1.5, -2.5])), "INT64 data must be integers; it holds 0.5"),
        (infer_body(row("FP64", ["1.0", 0, 0])), "input 'input': FP64 data must be numbers"),
        (infer_body(row("FP64", [True, 0.5, 0.5])), "it holds booleans"),
        (infer_body(row("FP64", [1, 2, 3], name="x")), "the model has no input 'x'"),
        (infer_body(row("FP64", [1, 2, 3]), row("FP64", [1, 2, 3])), "'input' is given twice"),
        (infer_body(row("FP64", [1, 2, 3]), id={"a": 1}), "'id' must be a string"),
    ],
)
def test_v2_values_that_do_not_fit_answer_400(server: Server, doc: object, message: str) -> None:
    status, body, _ = server.json("POST", "/v2/models/clf/infer", doc)
    assert status == 400, body
    assert message in body["error"]


def test_tritonclient_binary_inputs_are_checked_too(server: Server) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        unknown = triton.InferInput("features", list(X.shape), "FP64")
        unknown.set_data_from_numpy(X, binary_data=True)
        with pytest.raises(InferenceServerException, match="the model has no input 'features'"):
            client.infer("clf", [unknown])
        twice = [triton.InferInput("input", list(X.shape), "FP64") for _ in range(2)]
        for given in twice:
            given.set_data_from_numpy(X, binary_data=True)
        with pytest.raises(InferenceServerException, match="input 'input' is given twice"):
            client.infer("clf", twice)
        whole = np.array([[3, -1, 2], [-4, 0, 1]])
        ints = triton.InferInput("input", [2, 3], "INT64")
        ints.set_data_from_numpy(whole.astype(np.int64), binary_data=True)
        floats = triton.InferInput("input", [2, 3], "FP64")
        floats.set_data_from_numpy(whole.astype(np.float64), binary_data=True)
        as_ints = client.infer("clf", [ints]).as_numpy("output").tolist()
        assert as_ints == client.infer("clf", [floats]).as_numpy("output").tolist()
    finally:
        client.close()
    head = json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64",
                     "parameters": {"binary_data_size": 24}}]}
    ).encode()  # fmt: skip
    values = X[:1].astype("<f8").tobytes()
    for tail, status in ((b"", 200), (b"junk", 400)):
        got, raw, _ = server.request(
            "POST",
            "/v2/models/clf/infer",
            head + values + tail,
            {"Inference-Header-Content-Length": str(len(head))},
        )
        assert got == status, raw
    assert b"4 bytes after its last binary input" in raw


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v2/models/clf/infer", "POST"),
        ("DELETE", "/v2/models/clf/versions/1/infer", "POST"),
        ("POST", "/v2/models/clf", "GET, HEAD"),
        ("POST", "/v2/health/ready", "GET, HEAD"),
        ("GET", "/invocations", "POST"),
        ("POST", "/ping", "GET, HEAD"),
        ("PUT", "/metrics", "GET, HEAD"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ],
)
def test_405_answers_say_which_methods_are_allowed(
    server: Server, method: str, path: str, allow: str
) -> None:
    status, _, headers = server.request(method, path, b"{}" if method != "GET" else None)
    assert status == 405 and headers["allow"] == allow


def component(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A schema of the served OpenAPI document, with its references resolvable."""
    return {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}


@pytest.mark.parametrize(
    ("path", "schema", "body"),
    [
        ("/invocations", "ScoringRequest", {}),
        ("/invocations", "ScoringRequest", {"inputs": []}),
        ("/invocations", "ScoringRequest", {"inputs": X.tolist(), "instances": X.tolist()}),
        ("/invocations", "ScoringRequest", {"dataframe_records": []}),
        ("/invocations", "ScoringRequest", {"dataframe_split": {"columns": ["a"]}}),
        ("/v2/models/clf/infer", "InferenceRequest", {"inputs": []}),
        ("/v2/models/clf/infer", "InferenceRequest", {"id": {}, "inputs": [row("FP64", [0] * 3)]}),
        (
            "/v2/models/clf/infer",
            "InferenceRequest",
            {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64"}]},
        ),
        (
            "/v2/models/clf/infer",
            "InferenceRequest",
            {"inputs": [{**row("FP64", [0] * 3), "datatype": "FP8"}]},
        ),
    ],
)
def test_bodies_the_openapi_document_refuses_are_answered_400(
    server: Server, path: str, schema: str, body: object
) -> None:
    import jsonschema

    doc = server.json("GET", "/openapi.json")[1]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, component(doc, schema))
    status, answer, _ = server.json("POST", path, body)
    assert status == 400, answer


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "schema"),
    [("/invocations", "ScoringRequest"), ("/v2/models/clf/infer", "InferenceRequest")],
)
def test_bodies_the_openapi_document_allows_are_never_answered_5xx(
    server: Server, path: str, schema: str
) -> None:
    import jsonschema
    from hypothesis import HealthCheck, given, settings
    from hypothesis_jsonschema import from_schema

    doc = server.json("GET", "/openapi.json")[1]
    seen: set[int] = set()

    @settings(
        max_examples=40,  # generating from the v2 schema is slow: about a second each
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(from_schema(component(doc, schema)))
    def answered(body: object) -> None:
        status, raw, _ = server.request("POST", path, json.dumps(body).encode())
        assert status < 500, (body, raw)
        seen.add(status)

    answered()
    assert 400 in seen  # the generator reached the server's checks
    # ... and what the document promises is served: a valid body of each form answers 200
    for body in (
        (
            {"inputs": X.tolist()},
            {"instances": X.tolist()},
            {"dataframe_split": {"columns": ["a", "b", "c"], "data": X.tolist()}},
            {"dataframe_records": [dict(zip("abc", r, strict=True)) for r in X.tolist()]},
        )
        if schema == "ScoringRequest"
        else (infer_body(row("FP64", X[0].tolist()), id="r"),)
    ):
        jsonschema.validate(body, component(doc, schema))
        assert server.json("POST", path, body)[0] == 200, body
