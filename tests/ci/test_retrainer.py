"""The retrainer a monitor holds, on a real project: one retrain in flight per project (in this
process, in another, or by hand), and a cooldown from the last end that a restart keeps; the
decision itself over plain values."""

from __future__ import annotations

import threading
import time

import pytest

from conveyor.ci.retrain import Retrained
from conveyor.ci.retrainer import Retrainer, decide, exclusive
from conveyor.foundation.errors import LockError
from tests.ci.retraining import deployed, retrains, rows
from tests.conftest import Project


@pytest.fixture
def proj(project: Project) -> Project:
    return deployed(project)


def hms(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


@pytest.mark.parametrize(
    ("now", "last_end", "in_flight", "said"),
    [
        (1000.0, None, False, "started"),
        (1000.0, None, True, "refused: one in flight"),
        (1000.0, 500.0, True, "refused: one in flight"),
        (1000.0, 500.0, False, "started"),  # 500 s ago, cooldown 300 s
        (1000.0, 800.0, False, f"refused: cooldown until {hms(1100.0)}"),
        (1100.0, 800.0, False, "started"),  # the cooldown's last second is over
    ],
)  # fmt: skip
def test_decide(now: float, last_end: float | None, in_flight: bool, said: str) -> None:
    decision = decide(now=now, last_end=last_end, in_flight=in_flight, cooldown=300.0)
    assert decision.said() == said
    assert decision.start == (said == "started")


def test_one_retrain_in_flight_at_a_time(proj: Project) -> None:
    heard: list[Retrained] = []
    retrainer = Retrainer(proj.root, "production", cooldown=0.0, on_done=heard.append)
    proj.write("data/rows.csv", rows(30))
    hold = proj.write("hold", "")  # the stage waits while this file is there
    assert retrainer.request("drift") == "started"
    assert retrainer.request("drift again") == "refused: one in flight"
    other = Retrainer(proj.root, "production", cooldown=0.0)  # a second server of the project
    assert other.request("drift seen there") == "refused: one in flight"
    with (
        pytest.raises(LockError, match="a retrain is in flight"),
        exclusive(proj.root, "production"),
    ):
        pass
    hold.unlink()
    assert retrainer.wait(60)
    assert [d.outcome for d in heard] == ["rollout_started"]
    assert retrains(proj.root)[0].data["reason"] == "drift"
    with exclusive(proj.root, "production"):  # a retrain by hand holds off the servers
        assert retrainer.request("drift") == "refused: one in flight"
    assert retrainer.request("drift") == "started" and retrainer.wait(60)


def test_the_cooldown_counts_from_the_last_end_and_survives_a_restart(proj: Project) -> None:
    now = [1_000_000.0]
    clock = lambda: now[0]  # noqa: E731
    ended = threading.Event()
    retrainer = Retrainer(
        proj.root, "production", cooldown=600.0, on_done=lambda _: ended.set(), clock=clock
    )
    assert retrainer.request("first") == "started"
    assert ended.wait(60) and retrainer.wait(60)
    until = hms(now[0] + 600)
    now[0] += 599
    assert retrainer.request("too soon") == f"refused: cooldown until {until}"
    restarted = Retrainer(proj.root, "production", cooldown=600.0, clock=clock)
    assert restarted.request("too soon after a restart") == f"refused: cooldown until {until}"
    now[0] += 1
    assert restarted.request("in time") == "started" and restarted.wait(60)
    assert [e.data["reason"] for e in retrains(proj.root) if e.kind == "retrain.started"] == [
        "first",
        "in time",
    ]
