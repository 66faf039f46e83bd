"""Flavors: how a model's artifact is written and read back.

- ``sklearn``: skops by default, whose loading refuses any type not on the package's explicit
  trusted-types list (recorded when the model was saved, shown by ``models show``); plain
  joblib/pickle only with ``trusted=True``, and loading such a package warns.
- ``onnx``: ``model.onnx`` (from an ``onnx.ModelProto``, its bytes, or a ``.onnx`` file) run by
  onnxruntime on the CPU, one intra-op thread unless the manifest's ``onnx.intra_op_threads``
  says more. ``predict`` gives the graph's first output, ``predict_proba`` its second. Loading
  runs no code of the package.
- ``mlflow``: a folder MLflow wrote (any MLflow flavor), copied to ``mlflow_model/`` and loaded
  with ``mlflow.pyfunc``. MLflow flavors may unpickle code, so, as for joblib, only a package
  saved with ``trusted=True`` is loaded, and loading it warns.
- ``python``: a ``module:function`` loader (the code files travel inside the package) called
  with the package folder; it returns an object with ``predict``.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from conveyor.foundation import yamlio
from conveyor.foundation.errors import ConfigError, ConveyorError
from conveyor.registry import signature
from conveyor.registry.errors import FlavorError
from conveyor.registry.errors import UntrustedModel as UntrustedModel  # re-exported: its old home

FLAVORS = ("sklearn", "onnx", "mlflow", "python")


def save_sklearn(model: Any, folder: Path, *, trusted: bool) -> dict[str, Any]:
    """Write the artifact; the manifest fields it adds."""
    if trusted:
        import joblib

        joblib.dump(model, folder / "model.joblib")
        return {"artifact": "model.joblib", "format": "joblib", "trusted": True}
    skops_io = _skops()
    data = skops_io.dumps(model)
    (folder / "model.skops").write_bytes(data)
    # Everything in the file skops does not trust by itself: the saver vouches for these.
    types = sorted(skops_io.get_untrusted_types(data=data))
    return {"artifact": "model.skops", "format": "skops", "trusted_types": types}


def load_sklearn(folder: Path, manifest: dict[str, Any]) -> Any:
    artifact = folder / str(manifest["artifact"])
    if manifest.get("format") == "joblib":
        _vouched(artifact, manifest, "a pickle", "save with skops (the default) to avoid this")
        import joblib

        return joblib.load(artifact)
    skops_io = _skops()
    allowed = set(manifest.get("trusted_types") or [])
    found = set(skops_io.get_untrusted_types(file=artifact))
    unknown = sorted(found - allowed)
    if unknown:
        raise UntrustedModel(
            f"{artifact} holds types its package does not list as trusted: {', '.join(unknown)}",
            hint="the file was changed after it was saved, or comes from elsewhere: re-save it",
        )
    return skops_io.load(artifact, trusted=sorted(found))


def _skops() -> Any:
    from conveyor.registry.skopsio import skops_io

    try:
        return skops_io()
    except ImportError as exc:
        raise FlavorError(
            "the sklearn flavor needs skops", hint="pip install 'conveyor[sklearn]'"
        ) from exc


def _vouched(artifact: Path, manifest: dict[str, Any], what: str, instead: str) -> None:
    """Refuse an artifact that can run code when loaded unless its saver vouched for it."""
    if manifest.get("trusted") is not True:
        raise UntrustedModel(
            f"{artifact} is {what}, and the package does not say it is trusted",
            hint=f"load only packages you made; {instead}",
        )
    warnings.warn(
        f"loading {artifact} ({what}): it can run any code; only load packages you trust",
        UserWarning,
        stacklevel=4,  # the caller of package.load
    )


def save_onnx(model: Any, folder: Path) -> dict[str, Any]:
    if hasattr(model, "SerializeToString"):  # an onnx.ModelProto
        data = model.SerializeToString()
    elif isinstance(model, bytes | bytearray):
        data = bytes(model)
    elif isinstance(model, str | Path) and Path(model).is_file():
        data = Path(model).read_bytes()
    else:
        raise ConfigError(
            f"an onnx model is an onnx.ModelProto, its bytes, or a .onnx file, not {model!r:.60}"
        )
    (folder / "model.onnx").write_bytes(data)
    fields: dict[str, Any] = {"artifact": "model.onnx", "format": "onnx"}
    try:  # what onnxruntime cannot load fails now, not when served
        load_onnx(folder, fields)
    except ConveyorError:
        (folder / "model.onnx").unlink()  # the folder stays empty: save again once fixed
        raise
    return fields | {"onnx": {"intra_op_threads": 1}}


def load_onnx(folder: Path, manifest: dict[str, Any]) -> OnnxModel:
    try:
        import onnxruntime
    except ImportError as exc:
        raise FlavorError(
            "the onnx flavor needs onnxruntime", hint="pip install 'conveyor[onnx]'"
        ) from exc
    artifact = folder / str(manifest.get("artifact", "model.onnx"))
    if not artifact.is_file():
        raise FlavorError(f"{artifact} is missing", hint="the package is incomplete: re-save it")
    options = onnxruntime.SessionOptions()
    # One thread per session: a server runs several requests, or workers, side by side.
    options.intra_op_num_threads = int((manifest.get("onnx") or {}).get("intra_op_threads", 1))
    try:
        session = onnxruntime.InferenceSession(
            str(artifact), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime's errors share no base class but Exception
        raise FlavorError(
            f"{artifact} is not a model onnxruntime can load: {_first_line(exc)}",
            hint="write it with onnx.save or a converter such as skl2onnx, then re-save",
        ) from exc
    return OnnxModel(artifact, session)


class OnnxModel:
    """An onnxruntime session with ``predict`` (the first output) and ``predict_proba``."""

    def __init__(self, path: Path, session: Any) -> None:
        self.path = path
        self.session = session
        # Each input as a signature column of the numpy dtype onnxruntime wants.
        self.inputs = [
            signature.Column(a.name, _numpy_type(a.type), tuple(-1 for _ in a.shape))
            for a in session.get_inputs()
        ]
        self.outputs = [o.name for o in session.get_outputs()]

    def predict(self, data: Any) -> Any:
        return self._run(self.outputs[0], data)

    def predict_proba(self, data: Any) -> Any:
        if len(self.outputs) < 2:
            raise FlavorError(
                f"{self.path} has one output, so no probabilities",
                hint="a classifier converted by skl2onnx gives labels, then probabilities",
            )
        out = self._run(self.outputs[1], data)
        if isinstance(out, list) and out and isinstance(out[0], dict):  # skl2onnx's ZipMap
            import numpy as np

            return np.array([list(row.values()) for row in out])
        return out

    def _run(self, output: str, data: Any) -> Any:
        feed = self._feed(data)
        try:
            return self.session.run([output], feed)[0]
        except Exception as exc:
            raise FlavorError(f"{self.path}: onnxruntime failed: {_first_line(exc)}") from exc

    def _feed(self, data: Any) -> dict[str, Any]:
        import numpy as np

        if len(self.inputs) == 1:  # the whole array (or the one column named like the input)
            (arg,) = self.inputs
            whole = data[arg.name] if isinstance(data, Mapping) and arg.name in data else data
            return {arg.name: signature._cast(np.asarray(whole), arg)}
        names = [a.name for a in self.inputs]
        table = isinstance(data, Mapping) or signature._is_frame(data)
        if not table or any(n not in data for n in names):
            raise signature.SignatureError(
                f"{self.path} takes a table with the columns {', '.join(names)}",
                hint="send a DataFrame, or a dict of columns, with those names",
            )
        feed = {}
        for arg in self.inputs:  # column by column, each of shape [-1, 1] if the graph says so
            values = np.asarray(data[arg.name])
            feed[arg.name] = signature._cast(
                values.reshape(-1, 1) if len(arg.shape) == 2 else values, arg
            )
        return feed


def _numpy_type(onnx_type: str) -> str:
    element = onnx_type.removeprefix("tensor(").removesuffix(")")  # tensor(float) -> float
    return {"float": "float32", "double": "float64", "string": "object"}.get(element, element)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def save_mlflow(source: Any, folder: Path, *, trusted: bool) -> dict[str, Any]:
    src = Path(source)
    if not (src / "MLmodel").is_file():
        raise ConfigError(
            f"{src} is not an MLflow model (no MLmodel file)",
            hint="pass the folder mlflow.<flavor>.save_model wrote",
        )
    if not trusted:
        raise ConfigError(
            f"{src}: an MLflow model can run any code when loaded (its flavors may unpickle)",
            hint="pass trusted=True if you made it; loading the package will warn",
        )
    mlmodel = yamlio.load_file(src / "MLmodel").data
    if not isinstance(mlmodel, dict):
        raise ConfigError(f"{src / 'MLmodel'}: expected a mapping")
    shutil.copytree(src, folder / "mlflow_model")
    meta: dict[str, Any] = {
        "flavors": sorted(mlmodel.get("flavors") or {}),
        "version": mlmodel.get("mlflow_version"),
    }
    fields = {"artifact": "mlflow_model", "format": "mlflow", "trusted": True, "mlflow": meta}
    if mlmodel.get("signature"):
        try:  # MLflow writes each part of its signature as JSON inside the YAML
            raw = {k: json.loads(v) for k, v in mlmodel["signature"].items() if isinstance(v, str)}
        except ValueError as exc:
            raise ConfigError(f"{src / 'MLmodel'}: its signature is not JSON: {exc}") from exc
        meta["signature"] = raw
        converted = signature.from_mlflow(raw)  # None if conveyor has no words for it
        if converted is not None:
            fields["signature"] = converted.to_dict()
    requirements = src / "requirements.txt"
    if requirements.is_file():
        lines = [line.strip() for line in requirements.read_text().splitlines()]
        fields["requirements"] = [ln for ln in lines if ln and not ln.startswith(("#", "-"))]
    return fields


def load_mlflow(folder: Path, manifest: dict[str, Any]) -> MlflowModel:
    artifact = folder / str(manifest.get("artifact", "mlflow_model"))
    _vouched(artifact, manifest, "an MLflow model", "package models whose origin you know")
    return MlflowModel(pyfunc(artifact))


class MlflowModel:
    """An ``mlflow.pyfunc`` model whose complaints about its input (MLflow's schema checks, the
    ones conveyor's signature cannot state) are ValueErrors: a server answers those with 400,
    as MLflow's does, not with the 500 of a model that broke."""

    def __init__(self, model: Any) -> None:
        self.pyfunc = model

    def predict(self, data: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.pyfunc.predict(data)
        except MlflowException as exc:
            status: int = exc.get_http_status_code()  # type: ignore[no-untyped-call]
            if status != 400:
                raise
            raise ValueError(_first_line(exc)) from exc


def pyfunc(path: Path) -> Any:
    """The MLflow model at ``path`` as ``mlflow.pyfunc`` loads it (imported here: it is slow)."""
    try:
        import mlflow.pyfunc
    except ImportError as exc:
        raise FlavorError(
            "the mlflow flavor needs MLflow", hint="pip install 'conveyor[mlflow]'"
        ) from exc
    try:
        return mlflow.pyfunc.load_model(str(path))
    except Exception as exc:  # a flavor's loader may raise anything
        raise FlavorError(
            f"{path}: MLflow could not load the model: {_first_line(exc)}",
            hint="install what its requirements.txt lists, in the versions it names",
        ) from exc


def load_python(folder: Path, manifest: dict[str, Any]) -> Any:
    loader = str(manifest.get("loader", ""))
    module_name, _, function = loader.partition(":")
    if not module_name or not function:
        raise FlavorError(f"{folder}: a python model needs loader: 'module:function'")
    code = str(folder / "code")
    if code not in sys.path:
        sys.path.insert(0, code)
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, function)
    except (ImportError, AttributeError) as exc:
        raise FlavorError(f"{folder}: cannot load {loader}: {exc}") from exc
    return factory(folder)


LOADERS: dict[str, Callable[[Path, dict[str, Any]], Any]] = {
    "sklearn": load_sklearn,
    "onnx": load_onnx,
    "mlflow": load_mlflow,
    "python": load_python,
}
