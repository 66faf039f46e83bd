"""A model package: a folder with ``conveyor-model.yaml`` and the model's files.

The manifest names the package, its flavor and artifact, the signature inferred from an example
input, the example itself (a few rows), the pinned versions of the packages the flavor needs,
the Python version, and lineage (filled in when it is registered). :func:`load` returns a
:class:`Model` whose ``predict`` checks every input against the signature first.

    >>> from conveyor import models  # doctest: +SKIP
    >>> models.save(classifier, "models/pkg", example=X_test[:5])
    >>> models.load("models/pkg").predict(X_test)
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path
from typing import Any

from conveyor.foundation import atomic, extras, yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.registry import flavors, signature
from conveyor.registry.errors import PackageError

MANIFEST = "conveyor-model.yaml"
EXAMPLE_ROWS = 5
EXAMPLE = "input_example.json"
_REQUIREMENTS = {
    "sklearn": ("scikit-learn", "skops", "numpy"),
    "onnx": ("onnxruntime", "onnx", "numpy"),
    "mlflow": ("mlflow-skinny", "mlflow"),  # and the lines of the model's requirements.txt
    "python": ("numpy",),
}


class Model:
    """A loaded package: ``predict`` enforces the signature, then calls the model."""

    def __init__(self, folder: Path, manifest: dict[str, Any], model: Any) -> None:
        self.folder = folder
        self.manifest = manifest
        self.model = model
        raw = manifest.get("signature")
        self.signature = signature.Signature.from_dict(raw) if raw else None

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", ""))

    def predict(self, data: Any) -> Any:
        return self.model.predict(self._checked(data))

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities, for models that have them (the input checked the same way)."""
        if not hasattr(self.model, "predict_proba"):
            raise PackageError(f"model {self.name!r} gives no probabilities")
        return self.model.predict_proba(self._checked(data))

    def _checked(self, data: Any) -> Any:
        return data if self.signature is None else signature.enforce(self.signature, data)


def save(
    model: Any,
    path: str | Path,
    *,
    flavor: str = "sklearn",
    example: Any = None,
    name: str | None = None,
    trusted: bool = False,
    loader: str | None = None,
    code: list[str | Path] | None = None,
) -> Path:
    """Write ``model`` as a package at ``path`` (which must not exist or be empty).

    ``model`` is what the flavor takes: an estimator (``sklearn``), an ``onnx.ModelProto``, its
    bytes or a ``.onnx`` file (``onnx``), the folder MLflow saved a model in (``mlflow``, which
    needs ``trusted=True``), or None (``python``, with ``loader`` and ``code``).
    """
    folder = Path(path)
    if flavor not in flavors.FLAVORS:
        raise ConfigError(
            f"unknown flavor {flavor!r}", hint=f"one of: {', '.join(flavors.FLAVORS)}"
        )
    if folder.exists() and any(folder.iterdir()):
        raise PackageError(f"{folder} exists and is not empty", hint="save to a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"name": name or folder.name, "flavor": flavor}
    if flavor == "sklearn":
        manifest.update(flavors.save_sklearn(model, folder, trusted=trusted))
    elif flavor == "onnx":
        manifest.update(flavors.save_onnx(model, folder))
    elif flavor == "mlflow":
        manifest.update(flavors.save_mlflow(model, folder, trusted=trusted))
    else:
        if not loader:
            raise ConfigError("a python model needs loader='module:function'")
        manifest["loader"] = loader
        for item in code or []:
            src = Path(item)
            dst = folder / "code" / src.name
            dst.parent.mkdir(exist_ok=True)
            shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst)
    needs = _REQUIREMENTS[flavor]
    if example is not None:
        prediction = _predictor(model, folder, manifest).predict(example)
        inferred = signature.infer(example, prediction)
        manifest["signature"] = inferred.to_dict()
        (folder / EXAMPLE).write_text(json.dumps(_rows(example)) + "\n")
        manifest["input_example"] = EXAMPLE
        if inferred.tabular:  # a server hands such a model a DataFrame
            needs = (*needs, "pandas")
    manifest["requirements"] = requirements(_pins(needs), manifest.pop("requirements", []))
    manifest["python"] = platform.python_version()
    manifest["lineage"] = {}
    atomic.write_text(folder / MANIFEST, yamlio.dump(manifest))
    return folder


def _predictor(model: Any, folder: Path, manifest: dict[str, Any]) -> Any:
    """What predicts the example: the model itself if the flavor took one, else the package's."""
    flavor = manifest["flavor"]
    if flavor == "sklearn":
        return model
    if flavor == "mlflow":  # the saver just vouched for it: no warning
        return flavors.pyfunc(folder / manifest["artifact"])
    return flavors.LOADERS[flavor](folder, manifest)


def load(path: str | Path) -> Model:
    """The package in folder ``path`` (a registered version is loaded by
    :func:`conveyor.registry.stored.load`, which checks its package out into a folder first)."""
    folder = Path(path)
    manifest = read_manifest(folder)
    flavor = manifest.get("flavor")
    raw = manifest.get("signature")
    if raw and signature.Signature.from_dict(raw).tabular:
        extras.check("tables", purpose=f"{folder}: a model that takes a table (as a DataFrame)")
    if flavor not in flavors.LOADERS:
        raise ConfigError(
            f"{folder / MANIFEST}: unknown flavor {flavor!r}",
            hint=f"one of: {', '.join(flavors.FLAVORS)}",
        )
    return Model(folder, manifest, flavors.LOADERS[flavor](folder, manifest))


def read_manifest(folder: Path) -> dict[str, Any]:
    file = folder / MANIFEST
    if not file.exists():
        hint = None
        if (folder / "MLmodel").exists():
            hint = f"it is an MLflow model: models.save({str(folder)!r}, PATH, flavor='mlflow')"
        elif str(folder).startswith("models:/"):
            hint = "a registered version is loaded with conveyor.models.load"
        raise PackageError(f"{folder} is not a model package (no {MANIFEST})", hint=hint)
    data = yamlio.load_file(file).data
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping")
    return data


def _rows(example: Any) -> Any:
    """The first rows of an example, as JSON-friendly values."""
    import numpy as np

    if signature._is_frame(example):
        head = example.head(EXAMPLE_ROWS)
        return {
            "columns": [str(c) for c in head.columns],
            "data": json.loads(head.to_json(orient="values")),
        }
    return np.asarray(example)[:EXAMPLE_ROWS].tolist()


# Packages released together, each requiring the others at its own version (mlflow 3.4 needs
# mlflow-skinny==3.4): pinned at two versions, a package cannot be installed.
_TOGETHER = (frozenset(("mlflow", "mlflow-skinny", "mlflow-tracing")),)


def requirements(pins: list[str], saved: list[str]) -> list[str]:
    """One requirement per package, installable together: ``pins`` (what this environment has,
    ``name==version``) and the lines the model was saved with (an MLflow model's
    requirements.txt). A pin stands where it meets the saved line; where it does not, the saved
    line wins (the model's files were written by that version). mlflow and mlflow-skinny take
    one version: the one the model names, else this environment's.

        >>> requirements(["mlflow-skinny==3.5.0"], ["mlflow==3.4.0", "scikit-learn"])
        ['mlflow-skinny==3.4.0', 'mlflow==3.4.0', 'scikit-learn']
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    def parsed(line: str) -> Requirement | None:
        try:
            return Requirement(line)
        except InvalidRequirement:  # a URL or a pip option: kept as written
            return None

    by_name: dict[str, Requirement] = {}
    installed: dict[str, str] = {}  # canonical name -> this environment's version
    for line in pins:
        req = parsed(line)
        if req is not None:
            by_name[canonicalize_name(req.name)] = req
            installed[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    wanted: dict[str, SpecifierSet] = {}  # what the saved lines ask of each package
    others: list[str] = []
    for line in saved:
        req = parsed(line)
        if req is None:
            others.append(line)
            continue
        name = canonicalize_name(req.name)
        wanted[name] = req.specifier
        have = installed.get(name)
        if have is None or not req.specifier.contains(have, prereleases=True):
            by_name[name] = req  # the pin would not meet it
    for family in _TOGETHER:
        named = [n for n in by_name if n in family]
        spec = SpecifierSet(",".join(str(wanted[n]) for n in named if wanted.get(n)))
        exact = [s.version for n in named if n in wanted for s in wanted[n] if s.operator == "=="]
        candidates = exact + [installed[n] for n in named if n in installed]
        version = next((v for v in candidates if spec.contains(v, prereleases=True)), None)
        for n in named:
            req = by_name[n]
            req.specifier = SpecifierSet(f"=={version}") if version else spec
    return [str(req) for req in by_name.values()] + others


def _pins(names: tuple[str, ...]) -> list[str]:
    from importlib import metadata

    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins
