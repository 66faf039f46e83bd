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


def test_requirements_can_be_installed_together(tmp_path: Path, mlflow_dir: Path) -> None:
    """A model saved by another MLflow than this one: its mlflow pin is not this environment's
    mlflow-skinny, and mlflow X requires mlflow-skinny X, so both must take the model's."""
    import shutil
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    here = metadata.version("mlflow-skinny")
    older = "3.17.2" if here != "3.17.2" else "3.16.0"
    source = tmp_path / "older"
    shutil.copytree(mlflow_dir, source)
    (source / "requirements.txt").write_text(
        f"mlflow=={older}\nscikit-learn<=99\ncloudpickle==3.0.0\n# a comment\n"
    )
    folder = models.save(source, tmp_path / "pkg", flavor="mlflow", trusted=True)
    lines = package.read_manifest(folder)["requirements"]
    reqs = {canonicalize_name(r.name): r for r in map(Requirement, lines)}
    assert len(reqs) == len(lines), f"a package named twice: {lines}"
    assert str(reqs["mlflow-skinny"].specifier) == f"=={older}"
    assert str(reqs["mlflow"].specifier) == f"=={older}"
    assert str(reqs["cloudpickle"].specifier) == "==3.0.0"
    assert str(reqs["scikit-learn"].specifier) == "<=99"
    # Saved by this very MLflow: this environment's versions, each once.
    same = models.save(mlflow_dir, tmp_path / "same", flavor="mlflow", trusted=True)
    lines = package.read_manifest(same)["requirements"]
    assert lines.count(f"mlflow-skinny=={here}") == 1 and lines.count(f"mlflow=={here}") == 1
    assert len({canonicalize_name(Requirement(r).name) for r in lines}) == len(lines)


def test_requirements_merge() -> None:
    merged = package.requirements(
        ["mlflow-skinny==3.5.0", "mlflow==3.5.0"], ["mlflow<3", "scikit-learn", "git+https://h/r"]
    )
    assert merged == ["mlflow-skinny<3", "mlflow<3", "scikit-learn", "git+https://h/r"]
    merged = package.requirements(["mlflow-skinny==3.5.0"], ["MLflow[gateway]>=3", "numpy"])
    assert merged == ["mlflow-skinny==3.5.0", "MLflow[gateway]==3.5.0", "numpy"]
    pins = ["scikit-learn==1.5.0", "skops==0.10.0", "numpy==2.0.0"]
    assert package.requirements(pins, []) == pins
    assert package.requirements(pins, ["numpy>=1.26"]) == pins  # the pin meets it


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


def test_an_unnamed_mlflow_output_keeps_the_signature() -> None:
    # How MLflow saves a scikit-learn classifier from an input example.
    raw = {
        "inputs": [
            {"type": "double", "name": "x", "required": True},
            {"type": "long", "name": "n", "required": False},
        ],
        "outputs": [{"type": "long", "required": True}],
    }
    got = signature.from_mlflow(raw)
    assert got is not None and got.tabular
    assert got.inputs == (
        signature.Column("x", "float64", (-1,)),
        signature.Column("n", "int64", (-1,), required=False),
    )
    assert got.outputs == (signature.Column("output", "int64", (-1,)),)
    assert signature.Signature.from_dict(got.to_dict()) == got
    assert "required" not in got.to_dict()["inputs"][0]
    # An optional column may be left out, or missing in a row; a required one may not.
    columns = signature.enforce_columns(got, {"x": np.array([1.0, 2.0])})
    assert list(columns) == ["x"]
    columns = signature.enforce_columns(got, {"x": [1.0, 2.0], "n": [1, None]})
    assert columns["n"].tolist() == [1, None]
    with pytest.raises(SignatureError, match="lacks column"):
        signature.enforce_columns(got, {"n": [1]})
    # Outputs conveyor has no words for do not cost the inputs.
    odd = {**raw, "outputs": [{"type": "array", "items": {"type": "long"}}]}
    kept = signature.from_mlflow(odd)
    assert kept is not None and kept.inputs == got.inputs and kept.outputs == ()


def test_mlflow_schema_complaints_are_value_errors(
    tmp_path: Path, fitted: LogisticRegression
) -> None:
    """A signature conveyor has no words for (a datetime column) is left to MLflow to check;
    what MLflow refuses is a ValueError (a server's 400, as from MLflow's), not a crash."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    source = tmp_path / "dated"
    mlflow.sklearn.save_model(
        fitted,
        str(source),
        signature=ModelSignature(inputs=Schema([ColSpec("datetime", "when")])),
        pip_requirements=["scikit-learn"],
    )
    folder = models.save(source, tmp_path / "pkg", flavor="mlflow", trusted=True)
    assert "signature" not in package.read_manifest(folder)
    with pytest.warns(UserWarning, match="MLflow model"):
        loaded = models.load(folder)
    with pytest.raises(ValueError, match="when"):
        loaded.predict(pd.DataFrame({"when": ["not a date"]}))
