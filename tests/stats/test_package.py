"""The statistics package costs what gates/stats.py and gates/drift.py cost before it: the
package itself imports nothing heavy, its modules numpy only; scipy and pandas wait for the
function that needs them, as monitoring will import them where a server runs."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        ("conveyor.stats", "[]"),
        (
            "conveyor.stats.metrics, conveyor.stats.paired, conveyor.stats.unpaired, "
            "conveyor.stats.drift, conveyor.stats.frames",
            "['numpy']",
        ),
    ],
)
def test_importing_the_statistics_loads_no_scipy_or_pandas(modules: str, expected: str) -> None:
    code = (
        f"import sys\nimport {modules}\n"
        "print(sorted({'numpy', 'pandas', 'scipy'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
