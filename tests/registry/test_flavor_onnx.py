"""The onnx flavor: round trips, one input or one per column, probabilities (tensor or ZipMap),
the signature enforced, a broken artifact reported plainly, and a registered version loaded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LinearRegression, LogisticRegression

from conveyor import models
from conveyor.foundation.errors import ConfigError, ConveyorError
from conveyor.registry import package
from conveyor.registry.signature import SignatureError
from tests.conftest import Project


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.iloc[:, :5].rename(columns=lambda c: c.replace(" ", "_"))
    return frame, bunch.target.to_numpy()


@pytest.fixture(scope="module")
def clf(data: tuple[pd.DataFrame, np.ndarray]) -> tuple[LogisticRegression, Any]:
    X, y = data
    model = LogisticRegression(max_iter=2000).fit(X.to_numpy(), y)
    return model, to_onnx(model, X.to_numpy()[:1].astype(np.float32), options={"zipmap": False})


def test_onnx_round_trip(
    tmp_path: Path, data: tuple[pd.DataFrame, np.ndarray], clf: tuple[Any, Any]
) -> None:
    X = data[0].to_numpy()  # float64 data into a float32 graph
    model, onx = clf
    folder = models.save(onx, tmp_path / "pkg", flavor="onnx", example=X[:3])
    manifest = package.read_manifest(folder)
    assert manifest["artifact"] == "model.onnx" and manifest["onnx"]["intra_op_threads"] == 1
    assert any(r.startswith("onnxruntime==") for r in manifest["requirements"])
    assert manifest["signature"]["inputs"][0]["shape"] == [-1, 5]
    loaded = models.load(folder)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-5)
    # The same graph as bytes, or as a .onnx file.
    (tmp_path / "m.onnx").write_bytes(onx.SerializeToString())
    for i, given in enumerate([onx.SerializeToString(), tmp_path / "m.onnx"]):
        again = models.load(models.save(given, tmp_path / f"p{i}", flavor="onnx"))
        np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_a_zipmap_gives_a_probability_array(
    tmp_path: Path, data: tuple[pd.DataFrame, np.ndarray], clf: tuple[Any, Any]
) -> None:
    X = data[0].to_numpy()
    model = clf[0]
    zipmap = to_onnx(model, X[:1].astype(np.float32))  # probabilities as a list of dicts
    loaded = models.load(models.save(zipmap, tmp_path / "pkg", flavor="onnx", example=X[:2]))
    proba = loaded.predict_proba(X[:10])
    assert isinstance(proba, np.ndarray) and proba.shape == (10, 2)
    np.testing.assert_allclose(proba, model.predict_proba(X[:10]), atol=1e-5)


def test_a_graph_with_one_input_per_column(
    tmp_path: Path, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data
    scale = ColumnTransformer([("scale", StandardScaler(), list(X.columns))])
    model = make_pipeline(scale, LogisticRegression(max_iter=2000)).fit(X, y)
    onx = to_onnx(model, X.head(1).astype(np.float32), options={"zipmap": False})
    assert len(onx.graph.input) == 5
    loaded = models.load(models.save(onx, tmp_path / "pkg", flavor="onnx", example=X.head(3)))
    np.testing.assert_array_equal(loaded.predict(X[list(reversed(X.columns))]), model.predict(X))
    row = {c: [float(X[c].iloc[0])] for c in X.columns}
    np.testing.assert_array_equal(loaded.model.predict(row), model.predict(X.head(1)))
    with pytest.raises(SignatureError, match="takes a table with the columns"):
        loaded.model.predict(X.to_numpy())


def test_the_signature_is_enforced(
    tmp_path: Path, data: tuple[pd.DataFrame, np.ndarray], clf: tuple[Any, Any]
) -> None:
    X = data[0].to_numpy()
    model, onx = clf
    # A float32 example: float64 data may still feed it, text may not.
    example = X[:2].astype(np.float32)
    loaded = models.load(models.save(onx, tmp_path / "pkg", flavor="onnx", example=example))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    with pytest.raises(SignatureError, match=r"shape \[569, 4\]; the model takes \[-1, 5\]"):
        loaded.predict(X[:, :4])
    with pytest.raises(SignatureError, match="is object; the model takes float32"):
        loaded.predict(np.full((2, 5), "many", dtype=object))


def test_a_single_output_has_no_probabilities(
    tmp_path: Path, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = data[0].to_numpy(), data[1]
    onx = to_onnx(LinearRegression().fit(X, y), X[:1].astype(np.float32))
    loaded = models.load(models.save(onx, tmp_path / "pkg", flavor="onnx", example=X[:2]))
    with pytest.raises(ConveyorError, match="one output, so no probabilities"):
        loaded.predict_proba(X)


def test_a_broken_artifact_is_a_clear_error(tmp_path: Path, clf: tuple[Any, Any]) -> None:
    folder = models.save(clf[1], tmp_path / "pkg", flavor="onnx")
    (folder / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(
        ConveyorError, match=r"is not a model onnxruntime can load: .*INVALID_PROTO"
    ):
        models.load(folder)
    (folder / "model.onnx").unlink()
    with pytest.raises(ConveyorError, match=r"model\.onnx is missing"):
        models.load(folder)
    with pytest.raises(ConveyorError, match="not a model onnxruntime can load"):
        models.save(b"garbage", tmp_path / "bytes", flavor="onnx")
    assert not any((tmp_path / "bytes").iterdir())  # nothing left to stop a second try
    with pytest.raises(ConfigError, match=r"an onnx\.ModelProto, its bytes, or a \.onnx file"):
        models.save(tmp_path / "nowhere.onnx", tmp_path / "path", flavor="onnx")


def test_without_onnxruntime_the_error_says_what_to_install(
    tmp_path: Path, clf: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = models.save(clf[1], tmp_path / "pkg", flavor="onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ConveyorError) as info:
        models.load(folder)
    assert info.value.hint == "pip install 'conveyor[onnx]'"


def test_a_registered_onnx_version_loads_by_uri(
    project: Project,
    data: tuple[pd.DataFrame, np.ndarray],
    clf: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X = data[0].to_numpy()
    model, onx = clf
    models.save(onx, project.root / "model", flavor="onnx", example=X[:3], name="clf")
    assert "registered clf version 1" in project.ok("models", "register", "clf", "model")
    assert "onnx" in project.ok("models", "show", "clf/1")
    monkeypatch.chdir(project.root)
    loaded = models.load("models:/clf/1")
    assert loaded.manifest["flavor"] == "onnx"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
