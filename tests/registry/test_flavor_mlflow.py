"""The mlflow flavor: an MLflow model folder packaged, its signature taken over and enforced,
and loaded only when the package says it is trusted, with a warning."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from conveyor import models
from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError, ConveyorError
from conveyor.registry import flavors, package, signature
from conveyor.registry.signature import SignatureError

# Importing mlflow.pyfunc warns about a type hint in MLflow's own code (mlflow 3.x).
pytestmark = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")

X, y = make_classification(n_samples=60, n_features=4, random_state=0)


@pytest.fixture(scope="module")
def fitted() -> LogisticRegression:
    return LogisticRegression().fit(X, y)


@pytest.fixture(scope="module")
def mlflow_dir(tmp_path_factory: pytest.TempPathFactory, fitted: LogisticRegression) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    path = tmp_path_factory.mktemp("mlflow") / "mlm"
    # Naming the requirements spares MLflow the seconds it spends inferring them.
    mlflow.sklearn.save_model(
        fitted,
        str(path),
        signature=infer_signature(X[:3], fitted.predict(X[:3])),
        pip_requirements=["scikit-learn"],
    )
    return path


def test_mlflow_round_trip(tmp_path: Path, mlflow_dir: Path, fitted: LogisticRegression) -> None:
    folder = models.save(mlflow_dir, tmp_path / "pkg", flavor="mlflow", trusted=True)
    assert (folder / "mlflow_model" / "MLmodel").is_file()
    manifest = package.read_manifest(folder)
    assert manifest["trusted"] is True and "sklearn" in manifest["mlflow"]["flavors"]
    # The MLmodel's signature, in conveyor's terms.
    assert manifest["signature"]["inputs"] == [
        {"name": "input", "dtype": "float64", "shape": [-1, 4]}
    ]
    assert manifest["requirements"][0].startswith("mlflow-skinny==")
    assert "scikit-learn" in manifest["requirements"]
    with pytest.warns(UserWarning, match="MLflow model.*only load packages you trust"):
        loaded = models.load(folder)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    with pytest.raises(SignatureError, match=r"shape \[60, 3\]; the model takes \[-1, 4\]"):
        loaded.predict(X[:, :3])


def test_an_example_gives_the_signature_without_a_warning(tmp_path: Path, mlflow_dir: Path) -> None:
    folder = models.save(mlflow_dir, tmp_path / "pkg", flavor="mlflow", trusted=True, example=X[:2])
    assert (folder / "input_example.json").is_file()
    assert package.read_manifest(folder)["signature"]["outputs"][0]["dtype"] == "int64"


def test_only_a_trusted_package_is_loaded(tmp_path: Path, mlflow_dir: Path) -> None:
    with pytest.raises(ConfigError, match="can run any code") as info:
        models.save(mlflow_dir, tmp_path / "refused", flavor="mlflow")
    assert "trusted=True" in str(info.value.hint)
    folder = models.save(mlflow_dir, tmp_path / "pkg", flavor="mlflow", trusted=True)
    manifest = package.read_manifest(folder)
    (folder / package.MANIFEST).write_text(yamlio.dump({**manifest, "trusted": False}))
    with pytest.raises(flavors.UntrustedModel, match="does not say it is trusted"):
        models.load(folder)


def test_mistakes(tmp_path: Path, mlflow_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not an MLflow model"):
        models.save(tmp_path, tmp_path / "pkg", flavor="mlflow", trusted=True)
    with pytest.raises(ConveyorError, match="not a model package") as info:
        models.load(mlflow_dir)
    assert "flavor='mlflow'" in str(info.value.hint)
    folder = models.save(mlflow_dir, tmp_path / "ok", flavor="mlflow", trusted=True)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    with pytest.warns(UserWarning, match="MLflow model"), pytest.raises(ConveyorError) as info:
        models.load(folder)
    assert info.value.hint == "pip install 'conveyor[mlflow]'"


def test_an_mlflow_signature_in_conveyor_terms() -> None:
    columns = [{"type": "double", "name": "a"}, {"type": "integer", "name": "n"}]
    tensor = [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]
    got = signature.from_mlflow({"inputs": columns, "outputs": tensor})
    assert got is not None and got.tabular
    assert [(c.name, c.dtype, c.shape) for c in got.inputs] == [
        ("a", "float64", (-1,)),
        ("n", "int32", (-1,)),
    ]
    assert got.outputs == (signature.Column("output", "int64", (-1,)),)
    # What conveyor has no words for is left to MLflow to check.
    assert signature.from_mlflow({"inputs": [{"type": "any"}]}) is None
    assert signature.from_mlflow({"inputs": [{"type": "array", "name": "x"}]}) is None
    assert signature.from_mlflow({"inputs": tensor * 2}) is None
