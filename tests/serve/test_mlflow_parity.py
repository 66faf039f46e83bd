"""conveyor's ``/invocations`` against ``mlflow models serve``, live, on the same estimator.

MLflow's server is ``mlflow models serve -m PATH --env-manager local`` (mlflow-skinny, a dev
dependency, holds the command and its scoring server). The same
fitted classifier is saved twice: by ``mlflow.sklearn.save_model`` (served by MLflow, and by
conveyor as an ``mlflow``-flavor package) and by ``conveyor.models.save`` (conveyor's own
sklearn package). Every request of the table goes to the three servers; the status codes and
the predictions must agree, except where docs/serving.md says why conveyor answers otherwise
(``DIFFERS`` below, each with that reason).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.serve.conftest import Server

pytestmark = [
    pytest.mark.slow,
    # Importing mlflow.pyfunc warns about a type hint in MLflow's own code (mlflow 3.x).
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]

J = "application/json"
CSV = "text/csv"
NAN = float("nan")


def _split(data: Any, columns: Any = ("x", "y", "n"), **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"data": data, **extra}
    if columns is not None:
        doc["columns"] = list(columns)
    return {"dataframe_split": doc}


GOOD = [[0.5, -1.25, 3], [-2.0, 0.75, 1], [1.5, 2.5, 0]]
RECORDS = [dict(zip(("x", "y", "n"), row, strict=True)) for row in GOOD]
COLUMNS = {"x": [0.5, -2.0, 1.5], "y": [-1.25, 0.75, 2.5], "n": [3, 1, 0]}

# (name, content type or None for no header, body: a JSON-able value, or bytes sent as they are)
REQUESTS: list[tuple[str, str | None, Any]] = [
    # dataframe_split
    ("split", J, _split(GOOD)),
    ("split columns reordered", J, _split([[3, 0.5, -1.25]], ("n", "x", "y"))),
    ("split extra column", J, _split([[0.5, -1.25, 3, 9]], ("x", "y", "n", "z"))),
    ("split missing column", J, _split([[0.5, -1.25]], ("x", "y"))),
    ("split no columns", J, _split(GOOD, None)),
    ("split with index", J, _split(GOOD, index=[7, 8, 9])),
    ("split 1.0 in int column", J, _split([[0.5, -1.25, 3.0]])),
    ("split 1.5 in int column", J, _split([[0.5, -1.25, 3.5]])),
    ("split numbers as strings", J, _split([["0.5", "-1.25", "3"]])),
    ("split text in float column", J, _split([["abc", -1.25, 3]])),
    ("split null in float column", J, _split([[None, -1.25, 3]])),
    ("split NaN in float column", J, _split([[NAN, -1.25, 3]])),
    ("split NaN in int column", J, _split([[0.5, -1.25, NAN]])),
    ("split null in int column", J, _split([[0.5, -1.25, None]])),
    ("split bool in float column", J, _split([[True, -1.25, 3]])),
    ("split bool in int column", J, _split([[0.5, -1.25, True]])),
    ("split huge int", J, _split([[0.5, -1.25, 2**70]])),
    ("split data not a list", J, _split("rows")),
    ("split ragged rows", J, _split([[0.5, -1.25, 3], [1.0]])),
    ("split extra key", J, _split(GOOD, orient="split")),
    ("split no data", J, {"dataframe_split": {"columns": ["x", "y", "n"]}}),
    ("split empty data", J, _split([])),
    ("split is a list", J, {"dataframe_split": GOOD}),
    ("split nested values", J, _split([[[0.5], -1.25, 3]])),
    # dataframe_records
    ("records", J, {"dataframe_records": RECORDS}),
    ("records keys reordered", J, {"dataframe_records": [{"n": 3, "y": -1.25, "x": 0.5}]}),
    ("records extra key", J, {"dataframe_records": [{**RECORDS[0], "z": 1}]}),
    ("records one lacks a key", J, {"dataframe_records": [RECORDS[0], {"x": 1.0, "y": 2.0}]}),
    ("records missing column", J, {"dataframe_records": [{"x": 1.0, "y": 2.0}]}),
    ("records as a dict", J, {"dataframe_records": COLUMNS}),
    ("records 1.0 in int column", J, {"dataframe_records": [{**RECORDS[0], "n": 3.0}]}),
    ("records 1.5 in int column", J, {"dataframe_records": [{**RECORDS[0], "n": 3.5}]}),
    ("records null in float column", J, {"dataframe_records": [{**RECORDS[0], "y": None}]}),
    ("records NaN in int column", J, {"dataframe_records": [{**RECORDS[0], "n": NAN}]}),
    ("records NaN in float column", J, {"dataframe_records": [{**RECORDS[0], "x": NAN}]}),
    ("records empty", J, {"dataframe_records": []}),
    ("records rows", J, {"dataframe_records": GOOD}),
    # instances
    ("instances records", J, {"instances": RECORDS}),
    ("instances rows", J, {"instances": GOOD}),
    ("instances columns", J, {"instances": COLUMNS}),
    ("instances scalar", J, {"instances": 3}),
    ("instances empty", J, {"instances": []}),
    # inputs
    ("inputs columns", J, {"inputs": COLUMNS}),
    ("inputs one value per column", J, {"inputs": {"x": 0.5, "y": -1.25, "n": 3}}),
    ("inputs rows", J, {"inputs": GOOD}),
    ("inputs records", J, {"inputs": RECORDS}),
    ("inputs missing column", J, {"inputs": {"x": [0.5], "y": [-1.25]}}),
    ("inputs extra column", J, {"inputs": {**COLUMNS, "z": [1, 2, 3]}}),
    ("inputs unequal columns", J, {"inputs": {**COLUMNS, "n": [3]}}),
    ("inputs NaN in float column", J, {"inputs": {**COLUMNS, "y": [NAN, 0.75, 2.5]}}),
    ("inputs 1.0 in int column", J, {"inputs": {**COLUMNS, "n": [3.0, 1.0, 0.0]}}),
    ("inputs 1.5 in int column", J, {"inputs": {**COLUMNS, "n": [3.5, 1.0, 0.0]}}),
    ("inputs NaN in int column", J, {"inputs": {**COLUMNS, "n": [NAN, 1, 0]}}),
    ("inputs Infinity in float column", J, {"inputs": {**COLUMNS, "x": [math.inf, 1, 0]}}),
    ("inputs text in int column", J, {"inputs": {**COLUMNS, "n": ["a", "b", "c"]}}),
    # params
    ("split with empty params", J, {**_split(GOOD), "params": {}}),
    ("split with params", J, {**_split(GOOD), "params": {"alpha": 1}}),
    ("inputs with params", J, {"inputs": COLUMNS, "params": {"alpha": 1}}),
    ("params not an object", J, {**_split(GOOD), "params": "alpha"}),
    # the body's shape
    ("two input keys", J, {**_split(GOOD), "inputs": COLUMNS}),
    ("no input key", J, {"rows": GOOD}),
    ("empty object", J, {}),
    ("a list", J, GOOD),
    ("a number", J, 3),
    ("not JSON", J, b"{not json"),
    ("an unknown key beside", J, {**_split(GOOD), "extra": 1}),
    # CSV
    ("csv", CSV, b"x,y,n\n0.5,-1.25,3\n-2.0,0.75,1\n1.5,2.5,0\n"),
    ("csv reordered", CSV, b"n,x,y\n3,0.5,-1.25\n"),
    ("csv extra column", CSV, b"x,y,n,z\n0.5,-1.25,3,9\n"),
    ("csv missing column", CSV, b"x,y\n0.5,-1.25\n"),
    ("csv empty float", CSV, b"x,y,n\n,-1.25,3\n"),
    ("csv empty int", CSV, b"x,y,n\n0.5,-1.25,\n"),
    ("csv header only", CSV, b"x,y,n\n"),
    ("csv ragged", CSV, b"x,y,n\n0.5,-1.25,3\n1.0\n"),
    ("csv text in float column", CSV, b"x,y,n\nabc,-1.25,3\n"),
    ("csv 1.5 in int column", CSV, b"x,y,n\n0.5,-1.25,3.5\n"),
    ("csv utf-8", "text/csv; charset=utf-8", b"x,y,n\n0.5,-1.25,3\n"),
    # content types
    ("no content type", None, _split(GOOD)),
    ("json utf-8", "application/json; charset=utf-8", _split(GOOD)),
    ("json latin-1", "application/json; charset=latin-1", _split(GOOD)),
    ("json old format parameter", "application/json; format=pandas-split", _split(GOOD)),
    ("text/plain", "text/plain", _split(GOOD)),
]

# name -> conveyor's status, and why it is not MLflow's (docs/serving.md lists them)
DIFFERS: dict[str, tuple[int, str]] = {
    "split 1.5 in int column": (400, "MLflow truncates 3.5 to 3 and answers for another row"),
    "records 1.5 in int column": (400, "the same"),
    "inputs 1.5 in int column": (400, "the same"),
    "no content type": (415, "MLflow fails with a 500 (None has no split)"),
}
_BY_NAME = "MLflow hands the model a dict of arrays, which scikit-learn refuses; conveyor a table"
# The same, for a model MLflow saved without a signature.
DIFFERS_BARE: dict[str, tuple[int, str]] = {
    "split ragged rows": (400, "MLflow fills a short row with NaN; a short row is malformed"),
    "csv ragged": (400, "the same"),
    "records rows": (400, "MLflow names the columns 0, 1, 2; values by position mispredict"),
    "no content type": DIFFERS["no content type"],
    **{
        name: (200, _BY_NAME)
        for name in (
            "instances records", "instances columns", "inputs columns", "inputs records",
            "inputs one value per column", "inputs NaN in float column", "inputs with params",
            "inputs 1.0 in int column", "inputs 1.5 in int column", "inputs NaN in int column",
        )
    },
}  # fmt: skip


def _body(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return json.dumps(value).encode()  # NaN as MLflow's client writes it


def _post(url: str, content_type: str | None, body: bytes) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:  # http.client sends no Content-Type unless told: the "no content type" row needs that
        headers = {} if content_type is None else {"Content-Type": content_type}
        conn.request("POST", "/invocations", body=body, headers=headers)
        resp = conn.getresponse()
        status, raw = resp.status, resp.read()
    finally:
        conn.close()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """``mlflow models serve -m MODEL --env-manager local`` on a free loopback port (in a
    session of its own: the CLI starts uvicorn as a child, and both are stopped together)."""

    def __init__(self, model: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (model.parent / f"{model.name}.serve.log").open("wb")
        bin_dir = Path(sys.executable).parent  # the command runs uvicorn from PATH
        command = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(model)]
        self.proc = subprocess.Popen(
            [*command, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait(self) -> MlflowServer:
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise AssertionError(Path(self.log.name).read_text()[-3000:])
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "MLflow's server did not start in 180 s"
                time.sleep(0.2)
        return self

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The classifier saved by MLflow, packaged from there, and saved by conveyor."""
    import pandas as pd
    from mlflow.sklearn import save_model
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from conveyor import models

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=80),
            "y": rng.normal(size=80),
            "n": rng.integers(0, 4, size=80).astype("int64"),
        }
    )
    target = ((frame["x"] + frame["y"] + frame["n"] / 2) > 0.8).astype("int64")
    # A model that takes missing values, so that NaN rows show what the server lets through.
    classifier = make_pipeline(SimpleImputer(), LogisticRegression()).fit(frame, target)
    root = tmp_path_factory.mktemp("parity")
    mlflow_dir = root / "mlflow_model"
    with warnings.catch_warnings():  # MLflow warns that an integer column cannot hold NaN
        warnings.simplefilter("ignore")
        # From an input example, as MLflow's docs show: the signature's output has no name, as
        # for every scikit-learn classifier MLflow saves.
        save_model(
            classifier,
            str(mlflow_dir),
            input_example=frame.head(3),
            pip_requirements=["scikit-learn"],
            skops_trusted_types=["numpy.dtype"],  # the imputer's
        )
        # Without a signature (no example): MLflow's server, and conveyor, check nothing.
        save_model(
            classifier,
            str(root / "mlflow_bare"),
            pip_requirements=["scikit-learn"],
            skops_trusted_types=["numpy.dtype"],
        )
    return {
        "mlflow": mlflow_dir,
        "own": models.save(classifier, root / "own", example=frame, name="own"),
        "wrapped": models.save(mlflow_dir, root / "wrapped", flavor="mlflow", trusted=True),
        "mlflow_bare": root / "mlflow_bare",
        "wrapped_bare": models.save(
            root / "mlflow_bare", root / "wrapped_bare", flavor="mlflow", trusted=True
        ),
        "root": root,
    }


@pytest.fixture(scope="module")
def servers(saved: dict[str, Path]) -> Iterator[dict[str, str]]:
    started: list[Any] = []
    urls = {}
    try:
        theirs = [MlflowServer(saved[name]) for name in ("mlflow", "mlflow_bare")]
        started += theirs  # starting while conveyor's start: they take seconds each
        for name in ("own", "wrapped", "wrapped_bare"):
            started.append(Server(saved["root"], str(saved[name])))
            urls[name] = started[-1].url
        urls["mlflow"], urls["mlflow_bare"] = (server.wait().url for server in theirs)
        yield urls
    finally:
        for server in started:
            server.stop()


def _same(mine: tuple[int, Any], theirs: tuple[int, Any]) -> bool:
    if mine[0] != theirs[0]:
        return False
    if mine[0] != 200:
        return isinstance(mine[1], dict) and "error_code" in mine[1] and "message" in mine[1]
    return _equal(mine[1], theirs[1])


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b) and type(a) is type(b)


@pytest.mark.parametrize(
    ("which", "reference", "differs"),
    [
        ("own", "mlflow", DIFFERS),
        ("wrapped", "mlflow", DIFFERS),
        ("wrapped_bare", "mlflow_bare", DIFFERS_BARE),
    ],
)
def test_every_request_is_answered_as_mlflow_answers_it(
    servers: dict[str, str], which: str, reference: str, differs: dict[str, tuple[int, str]]
) -> None:
    differences = []
    for name, content_type, value in REQUESTS:
        body = _body(value)
        theirs = _post(servers[reference], content_type, body)
        mine = _post(servers[which], content_type, body)
        if name in differs:
            same = mine[0] == differs[name][0] and theirs[0] != mine[0]
        else:
            same = _same(mine, theirs)
        if not same:
            differences.append(f"{name}: mlflow {theirs!r:.300}\n    conveyor {mine!r:.300}")
    assert not differences, f"{len(differences)} of {len(REQUESTS)}:\n" + "\n".join(differences)


@pytest.mark.parametrize("which", ["own", "wrapped"])
def test_mlflow_scoring_client_gets_mlflow_answers(servers: dict[str, str], which: str) -> None:
    """MLflow's own client (what ``mlflow.deployments`` and ``mlflow models predict`` use)
    writes a DataFrame as ``dataframe_split`` with its index, missing values as ``NaN``."""
    import pandas as pd
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    frame = pd.DataFrame(GOOD, columns=["x", "y", "n"])
    frame.loc[1, "x"] = np.nan
    answers = {}
    for server in ("mlflow", which):
        host, port = servers[server].removeprefix("http://").split(":")
        client = ScoringServerClient(host, int(port))
        answers[server] = [
            client.invoke(frame).get_predictions().to_numpy().tolist(),
            client.invoke(frame, params={"alpha": 1}).get_predictions().to_numpy().tolist(),
            client.invoke(frame[["n", "y", "x"]].assign(id=1))
            .get_predictions()
            .to_numpy()
            .tolist(),
        ]
    assert answers[which] == answers["mlflow"]
    frame.loc[0, "n"] = np.nan  # an int column with a missing value: both refuse it
    with pytest.raises(Exception, match="error code 400"):
        ScoringServerClient(*servers[which].removeprefix("http://").split(":")).invoke(frame)


def test_a_text_column_as_mlflow_reads_it(tmp_path: Path) -> None:
    """A model of a text column: numbers sent for it are read as text (MLflow casts them), and
    what MLflow's own checks refuse after conveyor's is a 400, as from MLflow's server."""
    import pandas as pd
    from mlflow.sklearn import save_model
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from conveyor import models

    frame = pd.DataFrame({"color": ["red", "blue", "green", "red"] * 5})
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression())
    model.fit(frame, [0, 1, 0, 1] * 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_model(
            model,
            str(tmp_path / "m"),
            input_example=frame.head(2),
            pip_requirements=["scikit-learn"],
            serialization_format="cloudpickle",
        )
    wrapped = models.save(tmp_path / "m", tmp_path / "w", flavor="mlflow", trusted=True)
    own = models.save(model, tmp_path / "own", example=frame)
    started: list[Any] = [MlflowServer(tmp_path / "m")]
    try:
        started += [Server(tmp_path, str(wrapped)), Server(tmp_path, str(own))]
        started[0].wait()
        docs = [
            {"inputs": {"color": ["red", "blue"]}},
            {"inputs": {"color": [1, 2]}},
            {"inputs": {"color": ["red", 2]}},
            {"inputs": {"color": [True]}},
            {"inputs": {"color": [None]}},
            {"dataframe_records": [{"color": 1.5}]},
            {"dataframe_split": {"columns": ["color"], "data": [[1]]}},
        ]
        for doc in docs:
            answers = [_post(s.url, J, _body(doc)) for s in started]
            assert _same(answers[1], answers[0]), (doc, answers)
            assert _same(answers[2], answers[0]), (doc, answers)
    finally:
        for server in started:
            server.stop()
