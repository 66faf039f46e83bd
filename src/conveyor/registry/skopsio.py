"""skops, imported in a fraction of the time.

At import, skops works out which types it trusts: scikit-learn's estimators, by calling
``sklearn.utils.all_estimators()``, which imports every module of scikit-learn (pytest among
them), and the public ufuncs of numpy and scipy.special, by searching every loaded module for
each of them: seconds, on every start of a server. What it computes depends only on the versions
of scikit-learn, skops, numpy and scipy, so the first import keeps it in a cache file, and later
imports hand skops the same answers without importing or searching anything. skops' own checks
are unchanged: the lists it ends up with are the ones it computed itself for these versions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from conveyor.foundation import atomic


def skops_io() -> Any:
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    try:
        file = _cache_file()
    except ImportError:
        import skops.io

        return skops.io
    try:
        cached = _valid(json.loads(file.read_text()))
    except (OSError, ValueError):
        cached = None
    module, learned = _import(cached)
    if learned != cached:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(file, json.dumps(learned))
        except OSError:
            pass  # no cache: the next start is slow again, nothing else
    return module


def _valid(doc: Any) -> dict[str, Any]:
    names, public = doc.get("estimators"), doc.get("public_types")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValueError("estimators")
    if not (isinstance(public, dict) and all(isinstance(v, list) for v in public.values())):
        raise ValueError("public_types")
    return {"estimators": names, "public_types": public}


def _import(cached: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """skops.io, imported with the cached answers where there are some; the answers."""
    import sklearn.utils

    public: dict[str, list[str]] = dict(cached["public_types"]) if cached else {}
    real_estimators = sklearn.utils.all_estimators
    if cached is not None:
        stand_ins = []
        for name in cached["estimators"]:
            module, _, cls = name.rpartition(".")
            stand_ins.append((cls, type(cls, (), {"__module__": module})))
        sklearn.utils.all_estimators = lambda *args, **kwargs: list(stand_ins)
    try:
        module = _import_package(public)
    finally:
        sklearn.utils.all_estimators = real_estimators
    from skops.io import _trusted_types

    names = list(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES)
    return module, {"estimators": names, "public_types": public}


def _import_package(public: dict[str, list[str]]) -> Any:
    """``import skops.io``, with ``_utils.get_public_type_names`` answering from ``public``
    (and adding what it had to compute) while the package's modules run: the steps of
    importlib's own import, with that one change between loading ``_utils`` and the rest."""
    spec = importlib.util.find_spec("skops.io")
    if spec is None or spec.loader is None:
        raise ImportError("skops.io")
    package = importlib.util.module_from_spec(spec)
    sys.modules["skops.io"] = package
    try:
        from skops.io import _utils

        real = _utils.get_public_type_names

        def remembered(module: Any, oftype: type) -> list[str]:
            key = f"{module.__name__} {oftype.__module__}.{oftype.__qualname__}"
            if key not in public:
                public[key] = list(real(module=module, oftype=oftype))
            return list(public[key])

        _utils.get_public_type_names = remembered
        try:
            spec.loader.exec_module(package)
        finally:
            _utils.get_public_type_names = real
        parent = sys.modules["skops"]
        parent.io = package  # type: ignore[attr-defined]  # as importlib does for a submodule
    except BaseException:
        for name in [n for n in sys.modules if n == "skops.io" or n.startswith("skops.io.")]:
            del sys.modules[name]
        raise
    return package


def _cache_file() -> Path:
    from importlib import metadata

    versions = "-".join(
        metadata.version(dist) for dist in ("scikit-learn", "skops", "numpy", "scipy")
    )
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "conveyor" / f"skops-sklearn-types-{versions}.json"
