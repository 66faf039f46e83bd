"""The deployment record as a value: its split of traffic in every state."""

from __future__ import annotations

import pytest

from conveyor.registry.deployment import Deployment


def test_before_the_first_deploy_nothing_or_the_first_version_serves() -> None:
    assert Deployment("prod", "clf", None).split() == {}
    first = Deployment("prod", "clf", None, candidate=1, status="progressing", weight=100)
    assert first.split() == {1: 100.0}


@pytest.mark.parametrize(
    ("status", "mode", "split"),
    [
        ("progressing", "canary", {3: 90.0, 4: 10.0}),
        ("paused", "ab", {3: 90.0, 4: 10.0}),
        ("progressing", "shadow", {3: 100.0}),  # the candidate gets a copy, never answers
        ("aborted", "canary", {3: 100.0}),  # candidate kept for inspection, no traffic
        ("promoted", "canary", {3: 100.0}),
        ("idle", "canary", {3: 100.0}),
    ],
)
def test_the_split_follows_the_status_and_mode(
    status: str, mode: str, split: dict[int, float]
) -> None:
    record = Deployment("prod", "clf", 3, candidate=4, mode=mode, status=status, weight=10)  # type: ignore[arg-type]
    assert record.split() == split
    assert record.active == (status in ("progressing", "paused"))


def test_every_change_is_a_new_revision() -> None:
    record = Deployment("prod", "clf", 3)
    moved = record.but(candidate=4, status="progressing", weight=10)
    assert (record.revision, moved.revision) == (0, 1)
    assert moved.split() == {3: 90.0, 4: 10.0} and record.split() == {3: 100.0}
