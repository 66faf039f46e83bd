"""The rollout metrics of a server following an environment: records and events written to a
real store with :func:`conveyor.registry.deployments.save`, the follower's step, the exposition
read back with prometheus_client's parser, and the merge across workers."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conveyor.deploy.analysis import CheckResult
from conveyor.registry import deployments, queries
from conveyor.registry.deployment import CHECK_METRICS, EVENT_KINDS, Deployment
from conveyor.serve import metrics as metrics_mod
from conveyor.serve.app import App
from conveyor.serve.options import Options
from conveyor.serve.rollout import Activity, Check, checks
from conveyor.tracking import events as events_mod
from conveyor.tracking.db import opened

Key = tuple[str, frozenset[tuple[str, str]]]

FAILING = [
    CheckResult("error_rate", "fail", 0.01, 0.2, 0.05, (100, 120), "too many errors"),
    CheckResult("latency_p99", "inconclusive", 0.012, None, 1.25, (3, 0), "too few requests"),
]
PASSING = [CheckResult("error_rate", "pass", 0.01, 0.011, 0.05, (900, 950), "")]


def analysis(results: list[CheckResult], verdict: str, failures: int) -> dict[str, Any]:
    """A ``rollout.analysis`` event's data, as :func:`conveyor.deploy.decide.decide` writes it."""
    return {
        "checks": [r.to_dict() for r in results],
        "verdict": verdict,
        "step": 0,
        "weight": 20.0,
        "failures": failures,
        "failure_limit": 2,
    }


def save(
    root: Path,
    record: Deployment,
    events: Sequence[tuple[str, Mapping[str, Any]]],
    expected: int | None,
) -> Deployment:
    with opened(root) as store:
        return deployments.save(store, record, events, expected=expected, user="test")


def rollout(root: Path, env: str) -> Deployment:
    """Version 1 stable in ``env``, then a canary of version 2 whose first analysis failed."""
    first = Deployment(env, "clf", stable=1, status="promoted")
    first = save(root, first, [("rollout.started", {}), ("rollout.promoted", {})], None)
    canary = first.but(candidate=2, status="progressing", step=1, weight=20.0, failures=1)
    events = [
        ("rollout.started", {"version": 2}),
        ("rollout.step", {"step": 1, "weight": 20.0}),
        ("rollout.analysis", analysis(FAILING, "fail", 1)),
    ]
    return save(root, canary, events, first.revision)


def stored_counts(root: Path, env: str) -> dict[str, int]:
    with opened(root) as store:
        found = queries.deployment_events(store.execute, env)
    return {kind: sum(e.kind == kind for e in found) for kind in EVENT_KINDS}


def parsed(text: str) -> dict[Key, float]:
    """Every sample of an exposition, by name and labels, as Prometheus's own parser reads it."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Mapping[Key, float], name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def named(found: Mapping[Key, float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in found.items() if n == name}


def serving(root: Path, env: str, check: Callable[[App], Awaitable[None]]) -> None:
    """An app following ``env`` of the store at ``root`` (never started: the test steps it)."""

    async def main() -> None:
        app = App([], root=root, options=Options(deploy_interval=3600), env=env, model="clf")
        try:
            await asyncio.wait_for(check(app), timeout=120)
        finally:
            app.stop()

    asyncio.run(main())


async def scrape(app: App) -> dict[Key, float]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
        got = await client.get("/metrics")
    assert got.status_code == 200
    return parsed(got.text)


def test_the_last_analysis_the_step_and_the_event_counts_are_exported(registered: Path) -> None:
    before = time.time()
    rollout(registered, "rm-one")
    after = time.time()

    async def check(app: App) -> None:
        assert app.deployer is not None
        await app.deployer.step()
        found = await scrape(app)
        env = "rm-one"
        counts = named(found, "conveyor_rollout_events_total")
        assert counts == {
            frozenset({("env", env), ("kind", kind)}): float(n)
            for kind, n in stored_counts(registered, env).items()
        }
        assert value(found, "conveyor_rollout_events_total", env=env, kind="rollout.started") == 2
        assert value(found, "conveyor_rollout_events_total", env=env, kind="rollout.aborted") == 0
        assert value(found, "conveyor_rollout_step", env=env) == 1
        assert value(found, "conveyor_rollout_failures", env=env) == 1
        stamp = value(found, "conveyor_rollout_analysis_timestamp_seconds", env=env)
        assert stamp is not None and before <= stamp <= after
        check_value = "conveyor_rollout_check_value"
        assert value(found, check_value, env=env, metric="error_rate", side="stable") == 0.01
        assert value(found, check_value, env=env, metric="error_rate", side="candidate") == 0.2
        assert value(found, check_value, env=env, metric="latency_p99", side="stable") == 0.012
        # Not measured: no sample, rather than a zero that reads as a value.
        assert value(found, check_value, env=env, metric="latency_p99", side="candidate") is None
        threshold = "conveyor_rollout_check_threshold"
        assert value(found, threshold, env=env, metric="error_rate") == 0.05
        assert value(found, threshold, env=env, metric="latency_p99") == 1.25
        samples = "conveyor_rollout_check_samples"
        assert value(found, samples, env=env, metric="error_rate", side="stable") == 100
        assert value(found, samples, env=env, metric="error_rate", side="candidate") == 120
        assert value(found, samples, env=env, metric="latency_p99", side="candidate") == 0
        verdicts = {
            (dict(labels)["metric"], dict(labels)["verdict"]): v
            for labels, v in named(found, "conveyor_rollout_check_verdict").items()
        }
        assert verdicts == {
            ("error_rate", "pass"): 0, ("error_rate", "fail"): 1,
            ("error_rate", "inconclusive"): 0, ("latency_p99", "pass"): 0,
            ("latency_p99", "fail"): 0, ("latency_p99", "inconclusive"): 1,
        }  # fmt: skip
        # The deployment series are there as before.
        assert value(found, "conveyor_deployment_weight", env=env, model="clf") is not None

    serving(registered, "rm-one", check)


def test_a_new_revision_updates_them_and_only_a_new_revision_reads_the_events(
    registered: Path,
) -> None:
    env = "rm-two"
    canary = rollout(registered, env)

    async def check(app: App) -> None:
        deployer = app.deployer
        assert deployer is not None
        reads: list[int] = []
        read = deployer.activity.read

        def counted(root: Path, name: str, after: int) -> Any:
            reads.append(after)
            return read(root, name, after)

        deployer.activity.read = counted
        await deployer.step()
        assert reads == [0]
        # An event with no change to the record is not read (nothing decides without one)...
        with opened(registered) as store, store.engine.begin() as conn:
            events_mod.append(conn, "rollout.paused", deployments.subject(env), {})
        await deployer.step()
        await deployer.step()
        assert len(reads) == 1
        found = parsed(app.metrics.render())
        assert value(found, "conveyor_rollout_events_total", env=env, kind="rollout.paused") == 0
        # ... and is counted with the next revision, with what came along with it.
        aborted = canary.but(status="aborted", weight=0.0, failures=2, step=1)
        events = [
            ("rollout.analysis", analysis(PASSING, "pass", 2)),
            ("rollout.aborted", {"reason": "by hand"}),
        ]
        save(registered, aborted, events, canary.revision)
        await deployer.step()
        assert len(reads) == 2 and reads[1] > 0  # only the events added since the last read
        found = parsed(app.metrics.render())
        counts = named(found, "conveyor_rollout_events_total")
        assert {dict(k)["kind"]: v for k, v in counts.items()} == stored_counts(registered, env)
        assert value(found, "conveyor_rollout_events_total", env=env, kind="rollout.paused") == 1
        assert value(found, "conveyor_rollout_events_total", env=env, kind="rollout.aborted") == 1
        assert value(found, "conveyor_rollout_events_total", env=env, kind="rollout.analysis") == 2
        assert value(found, "conveyor_rollout_failures", env=env) == 2
        check_value = "conveyor_rollout_check_value"
        assert value(found, check_value, env=env, metric="error_rate", side="candidate") == 0.011
        # The last analysis had no latency check: its series are gone with it.
        assert all(dict(k)["metric"] == "error_rate" for k in named(found, check_value))
        assert value(found, "conveyor_rollout_check_verdict", env=env, metric="error_rate",
                     verdict="pass") == 1  # fmt: skip

    serving(registered, env, check)


def test_workers_merged_count_each_stored_event_once(registered: Path) -> None:
    env = "rm-three"
    rollout(registered, env)
    texts: list[str] = []

    async def check(app: App) -> None:
        assert app.deployer is not None
        await app.deployer.step()
        app.metrics.request("clf", "1", "infer", 200, 0.01)  # a worker's own counter
        texts.append(app.metrics.render())

    serving(registered, env, check)
    serving(registered, env, check)
    a, b = (metrics_mod.families(text) for text in texts)
    stored = stored_counts(registered, env)
    for live, gone in (([a, b], []), ([a], [b]), ([b, a], [a])):
        found = parsed(metrics_mod.exposition(metrics_mod.merge(live, gone)))
        counts = named(found, "conveyor_rollout_events_total")
        assert {dict(k)["kind"]: v for k, v in counts.items()} == stored
        # Requests are each worker's own: summed, a gone worker's included.
        requests = named(found, "conveyor_requests_total")
        assert list(requests.values()) == [float(len(live) + len(gone))]
        assert value(found, "conveyor_rollout_step", env=env) == 1
        verdict = "conveyor_rollout_check_verdict"
        assert value(found, verdict, env=env, metric="error_rate", verdict="fail") == 1


def test_a_worker_that_read_the_store_last_gives_the_merged_count() -> None:
    def exported(n: int) -> list[metrics_mod.Family]:
        m = metrics_mod.Metrics()
        m.rolled(Activity(Path("."), "prod", lambda _r, _e, _a: ({}, 0, None)).state(None))
        text = m.render().replace(
            'conveyor_rollout_events_total{env="prod",kind="rollout.step"} 0',
            f'conveyor_rollout_events_total{{env="prod",kind="rollout.step"}} {n}',
        )
        return metrics_mod.families(text)

    merged = metrics_mod.merge([exported(3), exported(4)], [exported(9)])
    found = parsed(metrics_mod.exposition(merged))
    assert value(found, "conveyor_rollout_events_total", env="prod", kind="rollout.step") == 4


def test_only_known_metrics_verdicts_and_finite_numbers_become_series() -> None:
    data = {
        "checks": [
            {"metric": "error_rate", "verdict": "pass", "stable": 0.1, "candidate": float("nan"),
             "threshold": 0.05, "samples": [10, 12]},
            {"metric": "error_rate", "verdict": "fail", "stable": 0.9},  # twice: the first counts
            {"metric": "made_up", "verdict": "pass", "stable": 1.0},
            {"metric": "ab", "verdict": "maybe", "stable": 1.0},
            {"metric": "agreement", "verdict": "inconclusive", "stable": None, "candidate": "x",
             "threshold": True, "samples": [1]},
            "not a check",
        ]
    }  # fmt: skip
    assert checks(data) == (
        Check("error_rate", "pass", 0.1, None, 0.05, (10, 12)),
        Check("agreement", "inconclusive", None, None, None, None),
    )
    assert checks({"checks": "nothing"}) == () and checks({}) == ()
    assert not any(math.isnan(c.candidate or 0.0) for c in checks(data))


def test_a_store_made_anew_is_counted_from_none() -> None:
    answers = [({"rollout.started": 3, "unknown.kind": 5}, 7, None), ({"rollout.step": 1}, 1, None)]
    asked: list[int] = []

    def read(_root: Path, _env: str, after: int) -> tuple[dict[str, int], int, None]:
        asked.append(after)
        return answers.pop(0)

    activity = Activity(Path("."), "prod", read)
    activity.update(Deployment("prod", "clf", stable=1, revision=5))
    assert activity.counts["rollout.started"] == 3 and "unknown.kind" not in activity.counts
    activity.update(Deployment("prod", "clf", stable=1, revision=1))  # lower: a new store
    assert asked == [0, 0]
    assert activity.counts["rollout.started"] == 0 and activity.counts["rollout.step"] == 1


def test_the_fixed_lists_are_the_deploy_configs() -> None:
    from conveyor.deploy.shapes import EVENTS, METRICS

    assert tuple(f"rollout.{e}" for e in EVENTS) == EVENT_KINDS
    assert (*METRICS, "ab") == CHECK_METRICS
