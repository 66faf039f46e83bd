"""What following a desired state changes: plain values in, swaps out."""

from __future__ import annotations

from conveyor.serve.follow import Swap, plan

PROD = "models:/clf@production"
STAGING = "models:/clf@staging"
FIXED = "models:/clf/1"


def test_nothing_changes_when_every_slot_serves_its_desired_version() -> None:
    assert plan({PROD: "3", STAGING: "4"}, {PROD: "3", STAGING: "4", FIXED: "1"}) == []


def test_a_moved_alias_is_one_swap_from_the_version_served() -> None:
    assert plan({PROD: "4", STAGING: "4"}, {PROD: "3", STAGING: "4"}) == [Swap(PROD, "4", "3")]


def test_a_first_load_is_a_swap_from_nothing() -> None:
    assert plan({PROD: "3", FIXED: "1"}, {PROD: None, FIXED: None}) == [
        Swap(PROD, "3", None),
        Swap(FIXED, "1", None),
    ]


def test_swaps_follow_the_order_slots_are_served_in() -> None:
    desired = {STAGING: "5", PROD: "4"}
    assert [s.slot for s in plan(desired, {PROD: "3", STAGING: "4"})] == [PROD, STAGING]


def test_a_slot_the_desired_state_does_not_name_keeps_its_version() -> None:
    # A fixed version, or an alias whose lookup failed this time: left serving.
    assert plan({STAGING: "5"}, {PROD: "3", STAGING: "4"}) == [Swap(STAGING, "5", "4")]


def test_a_desired_slot_this_server_does_not_serve_is_ignored() -> None:
    assert plan({"models:/other@production": "2"}, {PROD: "3"}) == []
