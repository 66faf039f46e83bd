"""An alias move and the event that records it commit together or not at all, on SQLite and a
real PostgreSQL server; and the registry's reads answer the same through SQLAlchemy and sqlite3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.registry import queries
from conveyor.registry.errors import ModelNotFound
from conveyor.registry.records import ModelVersion
from conveyor.registry.uris import Uri
from conveyor.registry.versions import Registry, set_alias
from conveyor.tracking import events
from conveyor.tracking.store import SqlStore, executor

PACKAGE = "ab" * 32 + ".tree"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    else:
        url = str(request.getfixturevalue("pg_db"))
    s = SqlStore(url)
    registry = Registry(s)
    for _ in range(2):
        registry.register("clf", PACKAGE, "sklearn", run_id=None, lineage={"k": 1}, user="u")
    registry.set_alias("clf", "production", 1, "u")
    yield s
    s.close()


class Boom(Exception):
    pass


def test_an_alias_move_and_its_event_commit_together(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        previous = set_alias(conn, "clf", "production", 2, "ci")
        events.append(conn, "alias.moved", "clf@production", {"from": previous, "to": 2})
    assert Registry(store).models_aliases("clf") == {"production": 2}
    (event,) = events.read(store.execute, subject="clf@production")
    assert (event.kind, event.data) == ("alias.moved", {"from": 1, "to": 2})
    moves = Registry(store).history("clf")
    assert [(m.alias, m.previous, m.version, m.user) for m in moves] == [
        ("production", None, 1, "u"),
        ("production", 1, 2, "ci"),
    ]


def test_an_alias_move_and_its_event_roll_back_together(store: SqlStore) -> None:
    with pytest.raises(Boom), store.engine.begin() as conn:
        set_alias(conn, "clf", "production", 2, "ci")
        events.append(conn, "alias.moved", "clf@production", {"to": 2})
        raise Boom  # a later step of the same change fails
    assert Registry(store).models_aliases("clf") == {"production": 1}
    assert events.read(store.execute) == []
    assert len(Registry(store).history("clf")) == 1


def test_a_refused_move_writes_no_event(store: SqlStore) -> None:
    with pytest.raises(ModelNotFound, match="has no version 7"), store.engine.begin() as conn:
        events.append(conn, "alias.moved", "clf@production", {"to": 7})
        set_alias(conn, "clf", "production", 7, "ci")
    assert events.read(store.execute) == []
    assert Registry(store).models_aliases("clf") == {"production": 1}


def test_events_are_read_in_order_and_by_kind(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        first = events.append(conn, "rollout.step", "production", {"weight": 10}, at=1.0)
        events.append(conn, "rollout.aborted", "production", {"why": "p99"}, at=2.0)
        events.append(conn, "rollout.step", "staging", {}, at=3.0)
    assert [e.id for e in events.read(store.execute)] == [first, first + 1, first + 2]
    steps = events.read(store.execute, kind="rollout.step", subject="production")
    assert [(e.time, e.data) for e in steps] == [(1.0, {"weight": 10})]


def test_resolution_reads_one_version_by_alias_number_or_latest(store: SqlStore) -> None:
    execute = store.execute
    production = queries.resolve(execute, Uri("clf", alias="production"))
    assert isinstance(production, ModelVersion)
    assert (production.version, production.package, production.lineage) == (1, PACKAGE, {"k": 1})
    assert queries.resolve(execute, Uri("clf")).version == 2
    assert queries.resolve(execute, Uri("clf", version=2)) == Registry(store).versions("clf")[1]
    with pytest.raises(ModelNotFound, match="no alias 'staging'") as miss:
        queries.resolve(execute, Uri("clf", alias="staging"))
    assert miss.value.hint is not None and "production" in miss.value.hint
    with pytest.raises(ModelNotFound, match="no version 3") as miss:
        queries.resolve(execute, Uri("clf", version=3))
    assert miss.value.hint == "versions: 1 to 2"
    with pytest.raises(ModelNotFound, match="no model named 'clv'") as miss:
        queries.resolve(execute, Uri("clv"))
    assert miss.value.hint is not None and "clf" in miss.value.hint


def test_the_sqlite3_path_and_the_store_answer_alike(tmp_path: Path) -> None:
    from conveyor.tracking.fast import SqliteReader

    path = tmp_path / "conveyor.db"
    store = SqlStore(f"sqlite:///{path}")
    registry = Registry(store)
    registry.register("clf", PACKAGE, "onnx", run_id="r1", lineage={}, user="u")
    registry.set_alias("clf", "production", 1, "u")
    reader = SqliteReader.open(path)
    assert reader is not None
    try:
        for uri in (Uri("clf"), Uri("clf", alias="production"), Uri("clf", version=1)):
            assert queries.resolve(reader.execute, uri) == registry.resolve(uri)
        for uri in (Uri("clf", alias="staging"), Uri("clf", version=4), Uri("nope")):
            with pytest.raises(ModelNotFound) as fast:
                queries.resolve(reader.execute, uri)
            with pytest.raises(ModelNotFound) as full:
                registry.resolve(uri)
            assert (fast.value.message, fast.value.hint) == (full.value.message, full.value.hint)
        assert queries.registered(reader.execute, aliased_only=True) == registry.registered(
            aliased_only=True
        )
    finally:
        reader.close()
        store.close()


def test_a_version_is_a_frozen_value() -> None:
    import dataclasses

    version = ModelVersion("clf", 3, PACKAGE, "sklearn", None, 1.0, "u", {"run": "r"})
    assert version.package == PACKAGE and version.run_id is None
    assert version.as_dict()["version"] == 3
    assert version.uri == "models:/clf/3"
    with pytest.raises(dataclasses.FrozenInstanceError):
        version.version = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        version["package"]  # type: ignore[index]  # a value, not the dict records used to be


def test_executor_reads_inside_the_callers_transaction(store: SqlStore) -> None:
    with store.engine.connect() as conn, conn.begin() as transaction:
        set_alias(conn, "clf", "staging", 2, "ci")
        assert queries.aliases(executor(conn), "clf") == {"production": 1, "staging": 2}
        transaction.rollback()
    assert Registry(store).models_aliases("clf") == {"production": 1}
