"""The image reference of a model version, as `conveyor package` and the manifests name it."""

from __future__ import annotations

import re

from conveyor.deploy.image import image_reference

# the OCI distribution spec's repository name component, and its tag
REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def test_the_reference_is_the_lowercased_model_and_its_version() -> None:
    assert image_reference("classifier", 3) == "conveyor-classifier:3"
    assert image_reference("Fraud", 12) == "conveyor-fraud:12"
    assert image_reference("clf", "local") == "conveyor-clf:local"
    assert image_reference("Churn_Model", 12) == "conveyor-churn_model:12"  # kept: valid
    assert image_reference("fraud.v2", 1) == "conveyor-fraud.v2:1"


def test_every_model_name_gives_a_valid_reference() -> None:
    for name in ("_private", "a..b", "A_B-c.D", "x--y", "9", "__", "m.v2_final", "a___b", "a._b"):
        repository, _, tag = image_reference(name, 7).partition(":")
        assert REPOSITORY.fullmatch(repository), name
        assert TAG.fullmatch(tag), name
    assert image_reference("a..b", 1) == "conveyor-a-b:1"
    assert image_reference("_private", 1) == "conveyor-private:1"
    assert image_reference("__", 1) == "conveyor-model:1"
