"""skops imported with the cached names of scikit-learn's types trusts exactly what a plain
import of skops trusts (each import in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """\
import json, sys
from conveyor.registry.skopsio import skops_io
io = skops_io()
import skops
from skops.io import _trusted_types
print(json.dumps({
    "names": _trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES,
    "testing_imported": "sklearn.utils._testing" in sys.modules,
    "attribute": getattr(skops, "io", None) is io,
    "untrusted": io.get_untrusted_types(file=sys.argv[1]),
}))
"""


def probe(cache: Path, model: Path) -> dict[str, object]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(model)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def test_the_cached_import_trusts_what_skops_computes(tmp_path: Path) -> None:
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(0).normal(size=(20, 2))
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, x[:, 0] > 0)
    file = tmp_path / "m.skops"
    file.write_bytes(skops.io.dumps(model))
    first = probe(tmp_path / "cache", file)  # computes the names and keeps them
    assert list((tmp_path / "cache" / "conveyor").glob("skops-sklearn-types-*.json"))
    second = probe(tmp_path / "cache", file)
    assert second["names"] == first["names"] and len(first["names"]) > 100  # type: ignore[arg-type]
    assert second["untrusted"] == first["untrusted"]
    assert first["testing_imported"] and not second["testing_imported"]
    assert first["attribute"] and second["attribute"]  # `import skops; skops.io` works too
    (cached,) = (tmp_path / "cache" / "conveyor").glob("*.json")
    cached.write_text("{broken")
    assert probe(tmp_path / "cache", file)["names"] == first["names"]  # a bad cache: plain import
