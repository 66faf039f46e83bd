"""A stage's ``resources:``: parsed as plain values, and its mistakes placed in conveyor.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.pipeline import definition
from conveyor.pipeline.resources import BadResource, memory_bytes, parse


def test_resources_parse_to_amounts_with_memory_in_bytes() -> None:
    assert parse({"gpus": 1, "cpus": 2, "memory": "4GiB"}) == (
        ("cpus", 2.0),
        ("gpus", 1.0),
        ("memory", 4 * 2**30),
    )
    assert parse({}) == ()
    assert parse({"cpus": 0.5}) == (("cpus", 0.5),)


@pytest.mark.parametrize(
    ("text", "size"),
    [("4GiB", 4 * 2**30), ("512 MB", 512 * 10**6), ("1.5G", 1_500_000_000), (1024, 1024)],
)
def test_memory_sizes(text: object, size: int) -> None:
    assert memory_bytes(text) == size


@pytest.mark.parametrize(
    ("raw", "key", "says"),
    [
        ({"cpu": 2}, "cpu", "did you mean 'cpus'"),
        ({"cpus": "two"}, "cpus", "must be a number"),
        ({"gpus": -1}, "gpus", "0 or more"),
        ({"memory": "4 parsecs"}, "memory", "units:"),
        ({"memory": True}, "memory", "a size such as 4GiB"),
    ],
)
def test_bad_resources_name_the_key(raw: dict[str, object], key: str, says: str) -> None:
    with pytest.raises(BadResource) as info:
        parse(raw)
    assert info.value.key == key
    assert says in f"{info.value} {info.value.hint}"


def test_a_stage_keeps_its_resources_through_the_compiled_cache(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "stages:\n  train:\n    cmd: echo\n    resources: {cpus: 2, gpus: 1, memory: 4GiB}\n"
    )
    stage = definition.load(tmp_path).stages["train"]
    assert stage.resources == (("cpus", 2.0), ("gpus", 1.0), ("memory", float(4 * 2**30)))
    assert definition.load(tmp_path).stages["train"] == stage  # read back from the cache


def test_a_resource_mistake_names_the_line_and_the_nearest_key(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "stages:\n  train:\n    cmd: echo\n    resources:\n      cpus: 2\n      gpu: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        definition.compile_pipeline(tmp_path, [])
    assert info.value.message.startswith("conveyor.yaml:6: stage 'train': resources:")
    assert info.value.hint == "did you mean 'gpus'?"
    (tmp_path / "conveyor.yaml").write_text("stages:\n  train:\n    cmd: echo\n    resources: 2\n")
    with pytest.raises(ConfigError, match=r"conveyor.yaml:4: .*cpus: 2, gpus: 1, memory: 4GiB"):
        definition.compile_pipeline(tmp_path, [])
