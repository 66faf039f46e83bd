"""The router alone: which version answers which request, shadow copies that never hold up or
fail a request, and agreement counted row by row. Its members here are small predictors that
answer at once, late, or not at all; tests/serve/test_app_deploy.py routes real models."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.registry.deployment import Deployment
from conveyor.serve.errors import ModelFailed
from conveyor.serve.metrics import Metrics
from conveyor.serve.predictor import Prediction, Role
from conveyor.serve.router import (
    PROMOTED,
    STABLE_ONLY,
    Router,
    agreement,
    bucket,
    request_key,
    routing,
)

ROLLOUT = Deployment("production", "clf", stable=1, candidate=2, status="progressing")


class Member:
    """A version answering ``outputs`` (or the input times ``factor``), after ``delay``
    seconds, or failing."""

    def __init__(
        self, version: str, *, factor: float = 1.0, delay: float = 0.0, fail: bool = False
    ) -> None:
        self.uri = f"models:/clf/{version}"
        self.name = "clf"
        self.role: Role = "stable"
        self.number = version
        self.factor = factor
        self.delay = delay
        self.fail = fail
        self.calls = 0
        self.done = 0

    @property
    def version(self) -> str | None:
        return self.number

    @property
    def ready(self) -> bool:
        return True

    def require(self) -> Any:
        raise AssertionError("not asked here")

    async def predict(
        self, data: Any, *, timeout: float | None = None, key: str | None = None
    ) -> tuple[Any, Prediction]:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise ModelFailed(f"model clf failed: version {self.number} is broken")
        self.done += 1
        return data, Prediction(self.number, np.asarray(data) * self.factor, self.role)


def router(candidate: Member | None = None, **kw: Any) -> tuple[Router, Member, Metrics]:
    metrics = Metrics()
    stable = Member("1")
    return Router(stable, candidate or Member("2"), metrics=metrics, **kw), stable, metrics


def answered(r: Router, ids: list[str]) -> Counter[str]:
    async def main() -> Counter[str]:
        got: Counter[str] = Counter()
        for rid in ids:
            _, prediction = await r.predict([[1.0]], key=rid)
            got[prediction.version] += 1
        return got

    return asyncio.run(main())


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("weight", [1.0, 10.0, 50.0, 90.0])
def test_canary_weights_split_request_ids_within_binomial_bounds(weight: float) -> None:
    r, _, _ = router()
    r.apply(ROLLOUT.but(weight=weight))
    n = 20_000
    got = answered(r, [f"{i:032x}" for i in range(n)])
    assert within_binomial(got["2"], n, weight / 100), got
    assert got["1"] + got["2"] == n


def test_a_retried_request_lands_on_the_same_version_and_a_larger_weight_keeps_it() -> None:
    r, _, _ = router()
    ids = [f"retry-{i}" for i in range(2_000)]

    def versions() -> dict[str, str]:
        async def main() -> dict[str, str]:
            return {rid: (await r.predict([[1.0]], key=rid))[1].version for rid in ids}

        return asyncio.run(main())

    r.apply(ROLLOUT.but(weight=10))
    first = versions()
    assert versions() == first  # retried: the same answers
    r.apply(ROLLOUT.but(weight=50))
    later = versions()
    assert all(later[rid] == "2" for rid, v in first.items() if v == "2")  # never back to 1
    assert within_binomial(sum(v == "2" for v in later.values()), len(ids), 0.5)


def test_the_bucket_is_the_same_in_every_process_and_salted_by_the_candidate() -> None:
    assert bucket("abc", "2") == bucket("abc", "2")
    assert 0 <= bucket("abc", "2") < 10_000
    salted = [bucket(f"user-{i}", "2") < 1000 for i in range(2_000)]
    resalted = [bucket(f"user-{i}", "3") < 1000 for i in range(2_000)]
    assert salted != resalted  # the next rollout's 10 % are other users


def test_sticky_keys_come_from_a_header_or_a_cookie_else_the_request_id() -> None:
    headers = {b"x-user-id": b"u-17", b"cookie": b"theme=dark; uid=abc42"}
    assert request_key("header:X-User-Id", headers, "rid") == "h:u-17"
    assert request_key("cookie:uid", headers, "rid") == "c:abc42"
    assert request_key("cookie:missing", headers, "rid") == "rid"
    assert request_key("header:x-other", headers, "rid") == "rid"
    assert request_key("", headers, "rid") == "rid"
    assert request_key("cookie:uid", {b"cookie": b"\x00;;=broken"}, "rid") == "rid"


def test_ab_keeps_a_user_on_one_side_whatever_the_request_id() -> None:
    r, _, _ = router()
    r.apply(ROLLOUT.but(mode="ab", weight=50, sticky="header:x-user-id"))
    assert r.sticky == "header:x-user-id"
    sides: dict[str, set[str]] = {}

    async def main() -> None:
        for user in range(200):
            for attempt in range(5):
                rid = f"request-{user}-{attempt}"
                key = request_key(r.sticky, {b"x-user-id": f"user-{user}".encode()}, rid)
                sides.setdefault(key, set()).add((await r.predict([[1.0]], key=key))[1].version)

    asyncio.run(main())
    assert all(len(v) == 1 for v in sides.values())
    assert within_binomial(sum(v == {"2"} for v in sides.values()), 200, 0.5)


@pytest.mark.parametrize(
    "record",
    [
        ROLLOUT.but(weight=30, status="aborted"),  # abort: stable alone, at once
        ROLLOUT.but(weight=30, status="promoted", stable=1, previous=1, candidate=2),
        ROLLOUT.but(weight=30, candidate=3),  # the record's candidate is not the one loaded
        ROLLOUT.but(weight=0),
        None,
    ],
)
def test_stable_alone_answers_unless_the_loaded_candidate_is_in_a_rollout(
    record: Deployment | None,
) -> None:
    r, _, _ = router()
    assert r.apply(record) == STABLE_ONLY
    assert answered(r, [f"r{i}" for i in range(500)]) == {"1": 500}
    assert r.candidate is not None and r.candidate.calls == 0  # type: ignore[attr-defined]


def test_a_promoted_version_held_only_by_the_candidate_slot_answers_everything_as_stable() -> None:
    # promoted while the stable slot still loads version 2 (the candidate answered from a
    # process of its own): version 1 must not answer again in between
    r, _, _ = router()
    record = ROLLOUT.but(weight=30, status="promoted", stable=2, candidate=None)
    assert r.apply(record) == PROMOTED
    assert r.candidate is not None and r.candidate.role == "stable"
    assert answered(r, [f"r{i}" for i in range(200)]) == {"2": 200}
    assert routing(record, "2", "2") == STABLE_ONLY  # the stable slot holds it: as usual
    assert routing(record, "2", None) == STABLE_ONLY  # nothing loaded as stable yet


def test_routing_per_mode() -> None:
    assert routing(ROLLOUT.but(weight=25), "2").weight == 25
    assert routing(ROLLOUT.but(weight=25), None) == STABLE_ONLY  # still loading
    shadow = routing(ROLLOUT.but(mode="shadow", weight=0), "2")
    assert (shadow.weight, shadow.copy) == (0, 100)
    assert routing(ROLLOUT.but(mode="shadow", weight=20), "2").copy == 20
    blue = routing(ROLLOUT.but(mode="blue_green", weight=0), "2")
    assert (blue.weight, blue.copy) == (0, 100)  # analysed on copies before the switch
    switched = routing(ROLLOUT.but(mode="blue_green", weight=100), "2")
    assert (switched.weight, switched.copy) == (100, 0)
    assert routing(ROLLOUT.but(weight=250), "2").weight == 100


def test_a_candidates_error_names_the_candidate() -> None:
    r, _, _ = router(Member("2", fail=True))
    r.apply(ROLLOUT.but(weight=100))
    with pytest.raises(ModelFailed) as caught:
        asyncio.run(r.predict([[1.0]], key="k"))
    assert caught.value.answered == ("2", "candidate")  # type: ignore[attr-defined]


def test_a_slow_shadow_never_holds_up_the_primary() -> None:
    slow = Member("2", delay=1.0)
    r, _, metrics = router(slow)
    r.apply(ROLLOUT.but(mode="shadow"))
    assert slow.role == "shadow"

    async def main() -> None:
        start = time.perf_counter()
        for i in range(20):
            _, prediction = await r.predict([[1.0], [2.0]], key=f"r{i}")
            assert (prediction.version, prediction.role) == ("1", "stable")
        assert time.perf_counter() - start < 0.5  # each copy sleeps a second
        assert len(r.copies) == 20  # under way, not awaited
        await asyncio.sleep(0.05)
        assert slow.calls == 20 and slow.done == 0
        await asyncio.wait_for(asyncio.gather(*r.copies), timeout=10)

    asyncio.run(main())
    assert metrics.shadow[("clf", "2", "agree")] == 40  # rows, not requests
    assert metrics.requests[("clf", "2", "shadow", "shadow", "200")] == 20


def test_a_failing_shadow_fails_no_request_and_is_counted() -> None:
    r, _, metrics = router(Member("2", fail=True))
    r.apply(ROLLOUT.but(mode="shadow"))

    async def main() -> None:
        for i in range(5):
            _, prediction = await r.predict([[1.0], [2.0], [3.0]], key=f"r{i}")
            assert prediction.version == "1"
        await asyncio.gather(*r.copies)

    asyncio.run(main())
    assert metrics.shadow == {("clf", "2", "error"): 15}
    assert metrics.requests[("clf", "2", "shadow", "shadow", "500")] == 5


def test_copies_in_flight_are_bounded_and_the_rest_dropped() -> None:
    r, _, metrics = router(Member("2", delay=0.2), max_copies=4)
    r.apply(ROLLOUT.but(mode="shadow"))

    async def main() -> None:
        for i in range(10):
            await r.predict([[1.0]], key=f"r{i}")
        assert len(r.copies) == 4
        await asyncio.gather(*r.copies)

    asyncio.run(main())
    assert metrics.shadow_dropped["clf"] == 6
    assert metrics.shadow[("clf", "2", "agree")] == 4


def test_disagreement_is_counted_and_exported() -> None:
    r, _, metrics = router(Member("2", factor=-1.0))
    r.apply(ROLLOUT.but(mode="shadow", weight=100))

    async def main() -> None:
        await r.predict([[1.0], [0.0], [2.0]], key="k")  # 0 * -1 == 0: one row agrees
        await asyncio.gather(*r.copies)

    asyncio.run(main())
    metrics.deployed("production", "clf", "1", "2", "progressing", "shadow", 0.0)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    comparisons = {
        s.labels["result"]: s.value for s in families["conveyor_shadow_comparisons"].samples
    }
    assert comparisons == {"agree": 1, "disagree": 2}
    (info,) = families["conveyor_deployment_info"].samples
    assert info.labels == {
        "env": "production",
        "model": "clf",
        "stable": "1",
        "candidate": "2",
        "status": "progressing",
        "mode": "shadow",
    }
    (weight,) = families["conveyor_deployment_weight"].samples
    assert weight.value == 0


def test_agreement_row_by_row() -> None:
    assert agreement(np.array([1, 0, 1]), np.array([1, 1, 1])) == 2
    assert agreement(np.array([0.1, 0.2]), np.array([0.1 + 1e-12, 0.2001])) == 1
    probs = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert agreement(probs, probs + np.array([[0, 0], [0, 0.1]])) == 1
    assert agreement(np.array(["a", "b"]), np.array(["a", "c"])) == 1
    assert agreement(np.array([1, 2]), np.array([1, 2, 3])) == 0  # another shape: none agree
    assert agreement(np.array([np.nan]), np.array([np.nan])) == 1
    assert agreement(np.array(["a"]), np.array([1.0])) == 0


def test_agreement_of_mixed_kinds_and_records() -> None:
    objects = np.array([{"a": 1}, None, "x"], dtype=object)
    assert agreement(objects, objects.copy()) == 3
    assert agreement(np.array([1.0, 2.0]), np.array(["1.0", "2.0"])) == 0
    assert agreement([[1, 2], [3, 4]], [[1, 2], [3, 5]]) == 1  # lists, as a model may answer


def test_the_error_reply_names_the_candidate_that_failed() -> None:
    from conveyor.serve.exchange import error
    from conveyor.serve.router import blame

    for scoring_body in (False, True):
        reply = error(blame(ModelFailed("boom"), "2", "candidate"), scoring_body=scoring_body)
        assert (reply.status, reply.version, reply.role) == (500, "2", "candidate")
    plain = error(ModelFailed("boom"), scoring_body=False)
    assert (plain.version, plain.role) == (None, None)  # the app's fallback: the path's model


def test_a_shadow_batches_its_copies_and_a_canary_answers_at_once() -> None:
    from conveyor.serve.batching import Batcher
    from conveyor.serve.router import SHADOW_HOLD

    member = Member("2")
    member.batcher = Batcher(lambda payloads, sizes: list(payloads))  # type: ignore[attr-defined]
    r, _, _ = router(member)
    r.apply(ROLLOUT.but(mode="shadow"))
    assert member.batcher.hold == SHADOW_HOLD > 0  # type: ignore[attr-defined]
    r.apply(ROLLOUT)  # a canary's answers are waited on
    assert member.role == "candidate" and member.batcher.hold == 0  # type: ignore[attr-defined]
