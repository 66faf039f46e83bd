"""conveyor's requirements for an image: read from its wheel, pinned as this environment has
them."""

from __future__ import annotations

import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from conveyor.deploy.errors import ContainerError
from conveyor.deploy.wheel import pinned_closure, requirements


def test_the_closure_pins_what_applies_at_the_installed_versions() -> None:
    lines = [
        "pyyaml>=6",
        "uvicorn>=0.30",  # needs click and h11
        "optuna>=4; extra == 'train'",  # not asked for
        "no-such-distribution-here>=1",  # not installed: kept as asked
    ]
    pins = pinned_closure(lines, extras=("serve",))
    assert f"pyyaml=={metadata.version('pyyaml')}" in pins
    assert f"click=={metadata.version('click')}" in pins
    assert f"h11=={metadata.version('h11')}" in pins
    assert "no-such-distribution-here>=1" in pins
    assert not [p for p in pins if p.startswith("optuna")]
    assert pins == sorted(pins)
    train = pinned_closure(["optuna; extra == 'train'"], extras=("train",))
    assert f"optuna=={metadata.version('optuna')}" in train


def test_the_requirements_are_the_wheels_metadata(tmp_path: Path) -> None:
    wheel = tmp_path / "conveyor-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(
            "conveyor-0.1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: conveyor\nVersion: 0.1.0\n"
            'Requires-Dist: numpy>=1.24\nRequires-Dist: uvloop>=0.19; extra == "serve"\n',
        )
    assert requirements(wheel) == ["numpy>=1.24", 'uvloop>=0.19; extra == "serve"']
    other = tmp_path / "other.whl"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("x.py", "")
    with pytest.raises(ContainerError, match="is not a wheel"):
        requirements(other)
