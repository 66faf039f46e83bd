"""Deployment records in the metadata store, on SQLite and a real PostgreSQL server: a write
from a stale revision is refused, the row, its events and the alias move commit or roll back
together, and a server reads the record without SQLAlchemy."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.registry import queries, readers, stored
from conveyor.registry.deployment import Deployment
from conveyor.registry.deployments import Conflict, history, save
from conveyor.registry.errors import ModelNotFound, RegistryError
from conveyor.registry.versions import Registry
from conveyor.tracking import events
from conveyor.tracking.store import SqlStore, executor

PACKAGE = "ab" * 32 + ".tree"
T0 = 1_800_000_000.0
FIRST = Deployment("production", "clf", stable=1, status="promoted", started=T0, revision=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conveyor.db'}"
    return str(request.getfixturevalue("pg_db"))


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    s = SqlStore(url)
    registry = Registry(s)
    for _ in range(3):
        registry.register("clf", PACKAGE, "sklearn", run_id=None, lineage={}, user="u")
    yield s
    s.close()


@pytest.fixture
def root(
    store: SqlStore, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A project whose metadata store is ``store`` (kept PostgreSQL connections closed after)."""
    monkeypatch.setenv("CONVEYOR_DB", url)
    yield tmp_path
    readers.close_all()


def kinds(store: SqlStore, env: str = "production") -> list[str]:
    return [e.kind for e in history(store, env)]


def test_a_first_deploy_writes_the_record_its_events_and_the_alias(store: SqlStore) -> None:
    written = save(store, FIRST, [("rollout.promoted", {"to": 1})], expected=None, user="ci")
    assert written == FIRST
    assert queries.deployment(store.execute, "production") == FIRST
    assert queries.deployment(store.execute, "staging") is None
    assert queries.deployments(store.execute) == [FIRST]
    (promoted,) = history(store, "production")
    assert (promoted.kind, promoted.subject, promoted.data) == (
        "rollout.promoted",
        "deploy:production",
        {"to": 1},
    )
    assert Registry(store).models_aliases("clf") == {"production": 1}
    (moved,) = events.read(store.execute, subject="clf@production")
    assert (moved.kind, moved.data) == (
        "alias.moved",
        {"from": None, "to": 1, "by": "deploy:production"},
    )
    assert [(m.alias, m.version, m.user) for m in Registry(store).history("clf")] == [
        ("production", 1, "ci")
    ]


def test_a_rollout_moves_the_alias_only_when_the_stable_version_changes(store: SqlStore) -> None:
    first = save(store, FIRST, [], expected=None)
    step = first.but(candidate=2, status="progressing", weight=10.0, step=1, step_started=T0 + 5)
    step = save(store, step, [("rollout.step", {"weight": 10})], expected=first.revision)
    assert Registry(store).models_aliases("clf") == {"production": 1}
    promoted = step.but(stable=2, previous=1, candidate=None, status="promoted", weight=0.0)
    save(store, promoted, [("rollout.promoted", {"to": 2})], expected=step.revision)
    assert queries.deployment(store.execute, "production") == promoted
    assert Registry(store).models_aliases("clf") == {"production": 2}
    assert [(m.previous, m.version) for m in Registry(store).history("clf")] == [(None, 1), (1, 2)]
    assert kinds(store) == ["rollout.step", "rollout.promoted"]
    back = promoted.but(stable=1, previous=2, status="rolled_back")
    save(store, back, [("rollout.rolled_back", {"to": 1})], expected=promoted.revision)
    assert Registry(store).models_aliases("clf") == {"production": 1}
    moves = events.read(store.execute, kind="alias.moved")
    assert [(e.data["from"], e.data["to"]) for e in moves] == [(None, 1), (1, 2), (2, 1)]


def test_an_alias_already_at_the_first_stable_version_is_not_moved_again(
    store: SqlStore,
) -> None:
    Registry(store).set_alias("clf", "production", 1, "u")
    save(store, FIRST, [], expected=None)
    assert len(Registry(store).history("clf")) == 1
    assert events.read(store.execute, kind="alias.moved") == []


def test_a_save_from_a_stale_revision_is_a_conflict_and_writes_nothing(store: SqlStore) -> None:
    first = save(store, FIRST, [], expected=None)
    with pytest.raises(Conflict, match="store has revision 1, the change was made from no record"):
        save(store, FIRST, [("rollout.started", {})], expected=None)
    moved = first.but(stable=2, previous=1)
    with pytest.raises(Conflict) as stale:
        save(store, moved, [("rollout.promoted", {})], expected=0)
    assert isinstance(stale.value, RegistryError)
    assert "conveyor rollout status production" in str(stale.value.hint)
    with pytest.raises(Conflict, match="the store has no record"):
        save(store, FIRST.but(env="staging"), [], expected=3)
    assert queries.deployments(store.execute) == [first]
    assert kinds(store) == [] and kinds(store, "staging") == []
    assert Registry(store).models_aliases("clf") == {"production": 1}


def test_a_record_saved_with_its_revision_unchanged_is_stored_with_the_next(
    store: SqlStore,
) -> None:
    first = save(store, FIRST, [], expected=None)
    again = save(store, dataclasses.replace(first, weight=5.0), [], expected=1)
    assert again.revision == 2 and again.weight == 5.0
    assert queries.deployment(store.execute, "production") == again


def _race(url: str, saves: list[tuple[Deployment, int | None]], hold: float) -> list[str]:
    """Each save from its own thread and connection, started together; the first to write
    holds its transaction open ``hold`` seconds, so the others read before it commits and
    write after. What each got, in order: "won" or "conflict"."""
    outcome = [""] * len(saves)
    start = threading.Barrier(len(saves))
    stores = [SqlStore(url) for _ in saves]

    def one(i: int) -> None:
        new, expected = saves[i]
        start.wait(timeout=30)
        try:
            with stores[i].engine.begin() as conn:
                save(conn, new, [("rollout.step", {"by": i})], expected=expected)
                time.sleep(hold)
            outcome[i] = "won"
        except Conflict:
            outcome[i] = "conflict"

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(saves))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for s in stores:
        s.close()
    assert not any(thread.is_alive() for thread in threads)
    return outcome


@pytest.mark.parametrize("first_deploy", [True, False])
def test_of_two_writers_racing_from_one_revision_exactly_one_wins(
    store: SqlStore, url: str, first_deploy: bool
) -> None:
    expected = None
    if not first_deploy:
        expected = save(store, FIRST, [], expected=None).revision
    a = FIRST.but(candidate=2, status="progressing", weight=10.0)
    b = FIRST.but(candidate=3, status="progressing", weight=50.0)
    outcome = _race(url, [(a, expected), (b, expected)], hold=0.3)
    assert sorted(outcome) == ["conflict", "won"], outcome
    winner = a if outcome[0] == "won" else b
    assert queries.deployment(store.execute, "production") == winner
    (step,) = history(store, "production")
    assert step.data == {"by": outcome.index("won")}  # the loser's event is not there


def test_a_write_committed_between_anothers_read_and_write_makes_it_a_conflict(
    store: SqlStore, url: str
) -> None:
    """The other writer reads revision 1 while the first holds its uncommitted revision 2,
    then writes: on PostgreSQL its read passes, and the write itself must refuse."""
    first = save(store, FIRST, [], expected=None)
    holding, done = threading.Event(), threading.Event()
    winner = first.but(candidate=2, status="progressing", weight=10.0)
    other = SqlStore(url)

    def hold() -> None:
        with store.engine.begin() as conn:
            save(conn, winner, [("rollout.started", {})], expected=first.revision)
            holding.set()
            done.wait(timeout=30)
            time.sleep(0.3)  # the other writer is now waiting on this row (or the lock)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(timeout=30)
        done.set()
        with pytest.raises(Conflict, match="store has revision 2"):
            save(other, first.but(candidate=3, status="progressing"), [], expected=1)
    finally:
        done.set()
        thread.join(timeout=60)
        other.close()
    assert queries.deployment(store.execute, "production") == winner
    assert kinds(store) == ["rollout.started"]


class Unwritable:
    """An event's data that cannot be written: its text fails, as a broken value would."""

    def __str__(self) -> str:
        raise RuntimeError("cannot be written")


def test_a_failing_event_rolls_back_the_row_the_alias_and_the_other_events(
    store: SqlStore,
) -> None:
    first = save(store, FIRST, [], expected=None)
    promoted = first.but(stable=2, previous=1, status="promoted")
    with pytest.raises(RuntimeError, match="cannot be written"):
        save(
            store,
            promoted,
            [("rollout.analysis", {"verdict": "pass"}), ("rollout.promoted", {"x": Unwritable()})],
            expected=first.revision,
        )
    assert queries.deployment(store.execute, "production") == first
    assert Registry(store).models_aliases("clf") == {"production": 1}
    assert len(Registry(store).history("clf")) == 1
    assert kinds(store) == []
    assert [e.data["to"] for e in events.read(store.execute, kind="alias.moved")] == [1]
    assert save(store, promoted, [], expected=first.revision) == promoted  # nothing held


def test_a_save_in_the_callers_transaction_rolls_back_with_it(store: SqlStore) -> None:
    class Later(Exception):
        pass

    with pytest.raises(Later), store.engine.begin() as conn:
        save(conn, FIRST, [("rollout.promoted", {})], expected=None)
        assert queries.deployment(executor(conn), "production") == FIRST  # seen inside
        raise Later
    assert queries.deployments(store.execute) == []
    assert Registry(store).models_aliases("clf") == {}
    assert events.read(store.execute) == []


def test_a_record_naming_an_unknown_model_or_version_is_refused(store: SqlStore) -> None:
    with pytest.raises(ModelNotFound, match="no model named 'clv'"):
        save(store, FIRST.but(model="clv"), [], expected=None)
    with pytest.raises(ModelNotFound, match="has no version 7"):
        save(store, FIRST.but(candidate=7, status="progressing"), [], expected=None)
    with pytest.raises(ModelNotFound, match="has no version 9"):
        save(store, FIRST.but(stable=9), [], expected=None)
    assert queries.deployments(store.execute) == [] and events.read(store.execute) == []


def test_an_environment_whose_name_is_no_alias_is_refused(store: SqlStore) -> None:
    from conveyor.foundation.errors import ConfigError

    with pytest.raises(ConfigError, match=r"clf@Prod\), and 'Prod' is not an alias") as bad:
        save(store, FIRST.but(env="Prod"), [], expected=None)
    assert "deploy: in conveyor.yaml" in str(bad.value.hint)
    assert queries.deployments(store.execute) == []


def test_a_record_with_a_mode_this_conveyor_does_not_know_is_an_error(store: SqlStore) -> None:
    import sqlalchemy as sa

    save(store, FIRST, [], expected=None)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE deployments SET mode = 'surge'"))
    with pytest.raises(RegistryError, match="mode 'surge'") as unknown:
        queries.deployment(store.execute, "production")
    assert "upgrade conveyor" in str(unknown.value.hint)


def test_the_server_reads_the_record_save_wrote(store: SqlStore, root: Path) -> None:
    assert stored.deployment(root, "production") is None
    assert stored.deployments(root) == []
    first = stored.save_deployment(root, FIRST, [("rollout.promoted", {"to": 1})], expected=None)
    step = first.but(candidate=2, status="progressing", weight=10.0, sticky="header:x-user-id")
    step = save(store, step, [("rollout.step", {"weight": 10})], expected=first.revision)
    assert stored.deployment(root, "production") == step
    assert stored.deployment(root, "staging") is None
    assert stored.deployments(root) == [step]
    history = stored.deployment_history(root, "production")
    assert [(e.kind, e.data) for e in history] == [
        ("rollout.promoted", {"to": 1}),
        ("rollout.step", {"weight": 10}),
    ]
    with pytest.raises(Conflict):
        stored.save_deployment(root, step.but(weight=50.0), [], expected=first.revision)
    assert stored.last_deployment_event(root, "production", "rollout.analysis") is None
    for verdict in ("inconclusive", "pass"):
        analysed = [("rollout.analysis", {"v": verdict})]
        step = save(store, step.but(), analysed, expected=step.revision)
    last = stored.last_deployment_event(root, "production", "rollout.analysis")
    assert last is not None and (last.subject, last.data) == ("deploy:production", {"v": "pass"})
    analyses = stored.deployment_history(root, "production", kind="rollout.analysis")
    assert [e.data["v"] for e in analyses] == ["inconclusive", "pass"]
    # The kept PostgreSQL connection sees the next commit (no transaction left open).
    later = save(store, step.but(weight=50.0), [], expected=step.revision)
    assert stored.deployment(root, "production") == later


POLL = """
import json, sys, time
from pathlib import Path
from conveyor.registry.stored import deployment, deployment_history, last_deployment_event
root = Path(sys.argv[1])
first = deployment(root, "production")
analysis = last_deployment_event(root, "production", "rollout.analysis")
kinds = [e.kind for e in deployment_history(root, "production")]
began = time.perf_counter()
for _ in range(50):
    deployment(root, "production")
took = (time.perf_counter() - began) / 50
print(json.dumps({
    "record": None if first is None else [first.stable, first.candidate, first.weight],
    "unknown": deployment(root, "staging"),
    "analysis": None if analysis is None else analysis.data,
    "kinds": kinds,
    "sqlalchemy": "sqlalchemy" in sys.modules,
    "seconds": took,
}))
"""


def test_a_server_polls_the_record_without_sqlalchemy(store: SqlStore, root: Path) -> None:
    """What a worker runs every 0.2 s: no SQLAlchemy import (a quarter of a second, and more
    memory per worker) on either backend, and a poll that takes milliseconds at most."""
    import json

    first = save(store, FIRST, [], expected=None)
    step = first.but(candidate=3, status="progressing", weight=25.0)
    save(store, step, [("rollout.analysis", {"verdict": "pass"})], expected=1)
    out = subprocess.run(
        [sys.executable, "-c", POLL, str(root)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
        timeout=60,
    ).stdout
    polled = json.loads(out)
    assert polled["record"] == [1, 3, 25.0]
    assert polled["unknown"] is None
    assert (polled["analysis"], polled["kinds"]) == ({"verdict": "pass"}, ["rollout.analysis"])
    assert polled["sqlalchemy"] is False
    assert polled["seconds"] < 0.05, polled  # about 0.2 ms on SQLite, 0.1 ms on PostgreSQL


def test_a_kept_connection_survives_a_server_that_drops_it(
    store: SqlStore, root: Path, url: str
) -> None:
    """A PostgreSQL restart (here: the backend killed) or another SQLite file put in the
    store's place: the next poll reads the current record, not an error, not a ghost."""
    first = save(store, FIRST, [], expected=None)
    assert stored.deployment(root, "production") == first
    if url.startswith("sqlite"):
        other = root / "restored.db"  # a backup, say, put in the store's place
        fresh = SqlStore(f"sqlite:///{other}")
        Registry(fresh).register("clf", PACKAGE, "sklearn", run_id=None, lineage={}, user="u")
        again = save(fresh, FIRST.but(env="staging"), [], expected=None)
        fresh.close()
        store.close()
        path = url[len("sqlite:///") :]
        os.replace(other, path)
        for log in ("-wal", "-shm"):  # the old file's: SQLite would replay them onto the new
            Path(path + log).unlink(missing_ok=True)
        assert stored.deployment(root, "production") is None
        assert stored.deployments(root) == [again]
        return
    killed = store.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        {},
    )
    assert killed and all(ok for (ok,) in killed)
    assert stored.deployment(root, "production") == first  # the full store, this once
    assert stored.deployment(root, "production") == first  # a new kept connection


def test_threads_share_the_kept_connection(store: SqlStore, root: Path) -> None:
    first = save(store, FIRST, [], expected=None)
    seen: list[Deployment | None] = []

    def poll() -> None:
        for _ in range(50):
            seen.append(stored.deployment(root, "production"))

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert seen == [first] * 200


def test_a_store_at_schema_0004_gains_deployments_on_open_keeping_its_rows(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's poll finds the old schema, reads through the full store, which migrates."""
    import sqlalchemy as sa

    from conveyor.tracking import migrate
    from conveyor.tracking.store import HEAD, engine_url

    engine = sa.create_engine(engine_url(url))
    migrate.upgrade(engine, "0004")
    with engine.begin() as conn:
        model = "INSERT INTO models (name, created, description) VALUES ('clf', 1, '')"
        conn.execute(sa.text(model))
        conn.execute(
            sa.text(
                "INSERT INTO model_versions (name, version, package, flavor, run_id, created,"
                " \"user\", lineage) VALUES ('clf', 1, :p, 'sklearn', NULL, 1, 'u', '{}')"
            ),
            {"p": PACKAGE},
        )
        events.append(conn, "alias.moved", "clf@staging", {"to": 1}, at=1.0)
    engine.dispose()
    assert HEAD == "0005"
    monkeypatch.setenv("CONVEYOR_DB", url)
    try:
        assert stored.deployment(tmp_path, "production") is None
    finally:
        readers.close_all()
    store = SqlStore(url)
    try:
        version = store.execute("SELECT version_num FROM conveyor_version", {})
        assert version == [("0005",)]
        save(store, FIRST, [("rollout.promoted", {})], expected=None)
        assert queries.deployment(store.execute, "production") == FIRST
        assert [e.subject for e in events.read(store.execute)] == [
            "clf@staging",
            "clf@production",
            "deploy:production",
        ]
        assert [v.version for v in Registry(store).versions("clf")] == [1]
    finally:
        store.close()
