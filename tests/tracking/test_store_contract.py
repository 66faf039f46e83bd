"""The store contract, run against every backend: SQLite and a real PostgreSQL server.

Each test gets an empty store; the same assertions hold on both, or the backend is wrong.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.tracking.store import HEAD, RunNotFound, SqlStore


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conveyor.db'}"
    return str(request.getfixturevalue("pg_db"))


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    s = SqlStore(url)
    yield s
    s.close()


T0 = 1_800_000_000.0


def start(run: str, name: str = "", ts: float = T0) -> dict[str, object]:
    return {"t": "run", "run": run, "ts": ts, "name": name, "started": ts, "status": "running"}


def test_a_new_store_is_at_the_newest_schema(store: SqlStore) -> None:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        assert conn.execute(sa.text("select version_num from conveyor_version")).scalar() == HEAD
    assert store.runs() == []


def test_a_batch_is_applied_once(store: SqlStore) -> None:
    batch = [start("r1"), {"t": "metrics", "run": "r1", "points": [["loss", 1.0, 0, T0]]}]
    assert store.apply("b1", batch) is True
    assert store.apply("b1", batch) is False
    assert len(store.history("r1", "loss")) == 1


def test_records_for_an_unknown_run_create_it(store: SqlStore) -> None:
    store.apply("m", [{"t": "metrics", "run": "r9", "ts": T0, "points": [["x", 2.0, None, T0]]}])
    (run,) = store.runs()
    assert run["id"] == "r9" and run["status"] == "running" and run["metrics"] == {"x": 2.0}
    store.apply(
        "s", [start("r9", "late"), {"t": "end", "run": "r9", "status": "finished", "ended": T0 + 3}]
    )
    got = store.run("r9")
    assert got["name"] == "late" and got["status"] == "finished" and got["duration"] == 3.0


def test_params_and_tags_keep_their_values(store: SqlStore) -> None:
    params = {"lr": 0.1, "n": 3, "name": "0.1", "layers": [1, 2], "on": True, "none": None}
    store.apply("b", [start("r"), {"t": "params", "run": "r", "params": params}])
    store.apply("c", [{"t": "tags", "run": "r", "tags": {"team": "a"}}])
    store.apply("d", [{"t": "params", "run": "r", "params": {"lr": 0.2}}])  # overwrites
    got = store.run("r")
    assert got["params"] == {**params, "lr": 0.2}
    assert got["tags"] == {"team": "a"}


def test_latest_metric_is_the_highest_step_then_the_newest(store: SqlStore) -> None:
    points = [["loss", 3.0, 2, T0], ["loss", 9.0, 1, T0 + 5], ["acc", 0.1, None, T0]]
    store.apply("a", [start("r"), {"t": "metrics", "run": "r", "points": points}])
    store.apply("b", [{"t": "metrics", "run": "r", "points": [["loss", 7.0, 0, T0 + 9]]}])
    store.apply("c", [{"t": "metrics", "run": "r", "points": [["acc", 0.2, None, T0 + 1]]}])
    assert store.run("r")["metrics"] == {"loss": 3.0, "acc": 0.2}
    assert [p[:2] for p in store.history("r", "loss")] == [(2, 3.0), (1, 9.0), (0, 7.0)]


def test_stages_hashes_and_artifacts(store: SqlStore) -> None:
    store.apply(
        "a",
        [
            start("r"),
            {
                "t": "stages",
                "run": "r",
                "stages": [{"stage": "train", "status": "ran", "duration": 1.5, "exit_code": 0}],
            },
            {"t": "hashes", "run": "r", "deps": {"data": "ab.tree"}, "outs": {"model": "cd"}},
            {"t": "artifact", "run": "r", "path": "plot.png", "hash": "ef", "size": 10},
        ],
    )
    got = store.run("r")
    assert got["stages"] == [{"stage": "train", "status": "ran", "duration": 1.5, "exit_code": 0}]
    assert got["deps"] == {"data": "ab.tree"} and got["outs"] == {"model": "cd"}
    assert got["artifacts"] == {"plot.png": {"hash": "ef", "size": 10}}


def test_runs_by_prefix_and_deletion(store: SqlStore) -> None:
    store.apply("a", [start("20260101-aaa", ts=T0), start("20260101-abb", ts=T0 + 1)])
    assert store.run("20260101-aa")["id"] == "20260101-aaa"
    with pytest.raises(RunNotFound, match="more than one"):
        store.run("20260101-a")
    with pytest.raises(RunNotFound, match="no run"):
        store.run("zzz")
    with pytest.raises(RunNotFound):
        store.run("2026%")  # a LIKE wildcard is not a wildcard here
    store.apply("d", [{"t": "delete", "run": "20260101-aaa", "ts": T0}])
    assert [r["id"] for r in store.runs()] == ["20260101-abb"]
    assert [r["id"] for r in store.runs(deleted=True)] == ["20260101-aaa", "20260101-abb"]


def _writer(url: str, worker: int, batches: int, points: int) -> None:
    store = SqlStore(url)
    try:
        for b in range(batches):
            rows = [["loss", float(i), b * points + i, time.time()] for i in range(points)]
            store.apply(
                f"w{worker}-{b}", [{"t": "metrics", "run": f"run{worker % 2}", "points": rows}]
            )
    finally:
        store.close()


def test_concurrent_writer_processes_lose_nothing(url: str) -> None:
    SqlStore(url).close()  # migrate once up front; openers racing on migration is tested below
    workers, batches, points = 4, 25, 40
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, w, batches, points)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = SqlStore(url)
    try:
        total = sum(len(store.history(f"run{r}", "loss")) for r in (0, 1))
        assert total == workers * batches * points
    finally:
        store.close()


def _open(url: str) -> None:
    SqlStore(url).close()


def test_concurrent_first_opens_migrate_once(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open, args=(url,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = SqlStore(url)
    assert store.runs() == []
    store.close()


def test_the_sqlite3_reader_reads_what_the_store_wrote(tmp_path: Path) -> None:
    from conveyor.tracking.fast import SqliteReader

    path = tmp_path / "conveyor.db"
    assert SqliteReader.open(path) is None  # no store yet: the full store must create it
    store = SqlStore(f"sqlite:///{path}")
    store.apply(
        "a",
        [
            start("r1", "one"),
            {"t": "params", "run": "r1", "params": {"lr": 0.1, "tags": ["a"]}},
            {"t": "metrics", "run": "r1", "points": [["loss", 1.0, 0, T0], ["loss", 0.5, 1, T0]]},
            {"t": "artifact", "run": "r1", "path": "p.png", "hash": "ab", "size": 3},
            {"t": "end", "run": "r1", "status": "finished", "ended": T0 + 2},
        ],
    )
    reader = SqliteReader.open(path)
    assert reader is not None
    try:
        assert reader.runs() == store.runs()
        assert reader.run("r") == store.run("r1")
        assert reader.run_record("r") == store.run_record("r1")
        assert reader.history("r1", "loss") == store.history("r1", "loss")
        assert reader.artifact_refs() == store.artifact_refs()
        with pytest.raises(NotImplementedError):
            reader.apply("b", [])
    finally:
        reader.close()
        store.close()


def test_many_batches_apply_in_one_transaction(store: SqlStore) -> None:
    batches = [(f"b{i}", [start(f"r{i}", ts=T0 + i)]) for i in range(5)]
    assert store.apply_many(batches) == 5
    assert store.apply_many([*batches, ("b9", [start("r9")])]) == 1
    assert len(store.runs()) == 6


def test_a_run_may_be_named_by_a_unique_name(store: SqlStore) -> None:
    store.apply(
        "a", [start("r1", "base"), start("r2", "twin", T0 + 1), start("r3", "twin", T0 + 2)]
    )
    assert store.run("base")["id"] == "r1"
    with pytest.raises(RunNotFound, match="several runs are named 'twin'"):
        store.run("twin")


def _drain(root: str, url: str) -> None:
    from conveyor.tracking import spool

    store = SqlStore(url)
    try:
        spool.drain(Path(root), store, chunk=7)
    finally:
        store.close()


def test_concurrent_drains_apply_each_spool_file_once(url: str, tmp_path: Path) -> None:
    from conveyor.tracking import spool

    SqlStore(url).close()
    for i in range(60):
        points = [["loss", float(i), i, T0]]
        spool.write(tmp_path, [{"t": "metrics", "run": "r", "ts": T0, "points": points}])
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_drain, args=(str(tmp_path), url)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = SqlStore(url)
    try:
        assert sorted(p[0] for p in store.history("r", "loss")) == list(range(60))
        assert spool.pending(tmp_path) == []
    finally:
        store.close()


def test_a_run_record_is_typed_and_reads_as_the_dict(store: SqlStore) -> None:
    store.apply(
        "a",
        [
            {**start("r1", "one"), "git_commit": "c0ffee", "git_dirty": False},
            {"t": "params", "run": "r1", "params": {"lr": 0.1}},
            {"t": "metrics", "run": "r1", "points": [["auc", 0.9, None, T0]]},
            {"t": "end", "run": "r1", "status": "finished", "ended": T0 + 4},
        ],
    )
    record = store.run_record("r1")
    assert (record.id, record.name, record.status, record.duration) == (
        "r1",
        "one",
        "finished",
        4.0,
    )
    assert (record.params, record.metrics) == ({"lr": 0.1}, {"auc": 0.9})
    assert record.as_dict() == store.run("r1")
    with pytest.raises(RunNotFound):
        store.run_record("nope")


def test_the_event_log_is_at_head_and_empty(store: SqlStore) -> None:
    from conveyor.tracking import events

    assert events.read(store.execute) == []


def test_a_store_at_an_older_schema_is_upgraded_on_open(url: str) -> None:
    """A store written before the event log (0003) gains it, keeping what it holds."""
    import sqlalchemy as sa

    from conveyor.tracking import events, migrate
    from conveyor.tracking.store import engine_url

    engine = sa.create_engine(engine_url(url))
    migrate.upgrade(engine, "0003")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO models (name, created, description) VALUES ('m', 1, '')"))
    engine.dispose()
    store = SqlStore(url)
    try:
        with store.engine.begin() as conn:
            events.append(conn, "alias.moved", "m@production")
        assert [e.subject for e in events.read(store.execute)] == ["m@production"]
        assert store.execute("SELECT name FROM models", {}) == [("m",)]
    finally:
        store.close()
