"""Model packages: every flavor round-trips; signatures are enforced; untrusted files refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from conveyor import models
from conveyor.foundation.errors import ConveyorError
from conveyor.registry import flavors, package
from conveyor.registry.signature import SignatureError


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.iloc[:, :5].rename(columns=lambda c: c.replace(" ", "_"))
    return frame, bunch.target.to_numpy()


def test_sklearn_round_trip_with_a_table(
    tmp_path: Path, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = data
    model = LogisticRegression(max_iter=2000).fit(X, y)
    folder = models.save(model, tmp_path / "pkg", example=X.head(3), name="cancer")
    manifest = package.read_manifest(folder)
    assert manifest["name"] == "cancer" and manifest["format"] == "skops"
    assert [c["name"] for c in manifest["signature"]["inputs"]] == list(X.columns)
    assert manifest["signature"]["outputs"][0]["dtype"] == "int64"
    assert manifest["input_example"] == "input_example.json"
    assert len(json.loads((folder / "input_example.json").read_text())["data"]) == 3
    assert any(r.startswith("scikit-learn==") for r in manifest["requirements"])
    loaded = models.load(folder)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    # Columns in another order, and integers where floats are expected, are fine.
    shuffled = X[list(reversed(X.columns))].round().astype("int64")
    np.testing.assert_array_equal(
        loaded.predict(shuffled), model.predict(shuffled.astype(float)[X.columns])
    )


def test_the_signature_is_enforced(tmp_path: Path, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    model = LogisticRegression(max_iter=2000).fit(X, y)
    loaded = models.load(models.save(model, tmp_path / "pkg", example=X.head(2)))
    with pytest.raises(SignatureError, match="lacks column"):
        loaded.predict(X.drop(columns=[X.columns[0]]))
    with pytest.raises(SignatureError, match="is object; the model takes float64"):
        loaded.predict(X.assign(**{X.columns[1]: "many"}))


def test_an_array_model_checks_shapes(
    tmp_path: Path, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = data
    array = X.to_numpy()
    model = LogisticRegression(max_iter=2000).fit(array, y)
    loaded = models.load(models.save(model, tmp_path / "pkg", example=array[:4]))
    np.testing.assert_array_equal(loaded.predict(array), model.predict(array))
    with pytest.raises(SignatureError, match=r"shape \[569, 4\]; the model takes \[-1, 5\]"):
        loaded.predict(array[:, :4])


def test_a_type_the_package_does_not_trust_is_refused(
    tmp_path: Path, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from tests.registry.custom_model import halve

    X, y = data
    plain = models.save(LogisticRegression(max_iter=2000).fit(X, y), tmp_path / "plain")
    custom = make_pipeline(FunctionTransformer(halve), LogisticRegression(max_iter=2000)).fit(X, y)
    vouched = models.save(custom, tmp_path / "custom")
    name = "tests.registry.custom_model.halve"
    assert name in package.read_manifest(vouched)["trusted_types"]
    np.testing.assert_array_equal(models.load(vouched).predict(X), custom.predict(X))
    # Swap the custom model's file into the plain package: its manifest vouches for nothing.
    (plain / "model.skops").write_bytes((vouched / "model.skops").read_bytes())
    with pytest.raises(flavors.UntrustedModel, match=re.escape(name)):
        models.load(plain)


def test_pickle_only_when_trusted_and_with_a_warning(
    tmp_path: Path, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = data
    folder = models.save(
        LogisticRegression(max_iter=2000).fit(X, y), tmp_path / "pkg", trusted=True
    )
    with pytest.warns(UserWarning, match="pickle"):
        models.load(folder)
    manifest = package.read_manifest(folder)
    with pytest.raises(flavors.UntrustedModel, match="does not say it is trusted"):
        flavors.load_sklearn(folder, {**manifest, "trusted": False})


def test_python_flavor_round_trip(tmp_path: Path) -> None:
    code = tmp_path / "doubler.py"
    code.write_text(
        "class Doubler:\n    def predict(self, x):\n        return x * 2\n"
        "def load(folder):\n    return Doubler()\n"
    )
    example = np.arange(6, dtype=float).reshape(3, 2)
    folder = models.save(
        None, tmp_path / "pkg", flavor="python", loader="doubler:load", code=[code], example=example
    )
    assert (folder / "code" / "doubler.py").exists()
    np.testing.assert_array_equal(models.load(folder).predict(example), example * 2)


def test_mistakes(tmp_path: Path) -> None:
    with pytest.raises(ConveyorError, match="unknown flavor"):
        models.save(None, tmp_path / "a", flavor="tensorflow")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(ConveyorError, match="not empty"):
        models.save(None, tmp_path / "b")
    with pytest.raises(ConveyorError, match="not a model package"):
        models.load(tmp_path)


def test_registry_errors_have_their_own_types(tmp_path: Path) -> None:
    from conveyor.registry.errors import PackageError, RegistryError

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(PackageError, match="not empty"):
        models.save(None, tmp_path / "b")
    with pytest.raises(PackageError, match="not a model package") as err:
        package.load(tmp_path)
    assert isinstance(err.value, RegistryError)
    with pytest.raises(PackageError) as err:  # the format knows folders; the registry, URIs
        package.load("models:/clf@production")
    assert err.value.hint == "a registered version is loaded with conveyor.models.load"
