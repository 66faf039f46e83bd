"""Flavors: how a model's artifact is written and read back.

- ``sklearn``: skops by default, whose loading refuses any type not on the package's explicit
  trusted-types list (recorded when the model was saved, shown by ``models show``); plain
  joblib/pickle only with ``trusted=True``, and loading such a package warns.
- ``python``: a ``module:function`` loader (the code files travel inside the package) called
  with the package folder; it returns an object with ``predict``.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from typing import Any

from conveyor.foundation.errors import ConveyorError

FLAVORS = ("sklearn", "python")


class UntrustedModel(ConveyorError):
    exit_code = 2


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
        if manifest.get("trusted") is not True:
            raise UntrustedModel(
                f"{artifact} is a pickle, and the package does not say it is trusted",
                hint="load only packages you made; save with skops (the default) to avoid this",
            )
        import joblib

        warnings.warn(
            f"loading {artifact} with pickle: it can run any code; only load packages you trust",
            UserWarning,
            stacklevel=3,
        )
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
    try:
        import skops.io as skops_io
    except ImportError as exc:
        raise ConveyorError(
            "the sklearn flavor needs skops", hint="pip install 'conveyor[sklearn]'"
        ) from exc
    return skops_io


def load_python(folder: Path, manifest: dict[str, Any]) -> Any:
    loader = str(manifest.get("loader", ""))
    module_name, _, function = loader.partition(":")
    if not module_name or not function:
        raise ConveyorError(f"{folder}: a python model needs loader: 'module:function'")
    code = str(folder / "code")
    if code not in sys.path:
        sys.path.insert(0, code)
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, function)
    except (ImportError, AttributeError) as exc:
        raise ConveyorError(f"{folder}: cannot load {loader}: {exc}") from exc
    return factory(folder)
