"""skops, imported in a fraction of the time.

At import, skops works out which scikit-learn types it trusts by calling
``sklearn.utils.all_estimators()``, which imports every module of scikit-learn (pytest among
them): seconds, on every start of a server. The names it computes depend only on the versions of
scikit-learn and skops, so the first import keeps them in a cache file, and later imports hand
skops the same names without importing the modules. skops' own checks are unchanged: the list it
ends up with is the one it computed itself for these versions.
"""

from __future__ import annotations

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
        names = json.loads(file.read_text())
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ValueError(file)
    except (OSError, ValueError, ImportError):
        return _import_and_remember()
    return _import_with(names)


def _import_and_remember() -> Any:
    import skops.io
    from skops.io import _trusted_types

    try:
        file = _cache_file()
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(file, json.dumps(_trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES))
    except (OSError, ImportError):
        pass  # no cache: the next start is slow again, nothing else
    return skops.io


def _import_with(names: list[str]) -> Any:
    import sklearn.utils

    stand_ins = []
    for name in names:
        module, _, cls = name.rpartition(".")
        stand_ins.append((cls, type(cls, (), {"__module__": module})))
    real = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: list(stand_ins)
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = real
    return skops.io


def _cache_file() -> Path:
    from importlib import metadata

    versions = f"{metadata.version('scikit-learn')}-{metadata.version('skops')}"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "conveyor" / f"skops-sklearn-types-{versions}.json"
