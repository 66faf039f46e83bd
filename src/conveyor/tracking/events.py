"""The append-only event log: what happened, to what, with the inputs that decided it.

An event is written on the caller's connection, inside the transaction of the change it
records (an alias move, a rollout step), so the change and its event commit or roll back
together; nothing updates or deletes an event. Reading is plain SQL over an ``execute``
callable, like every other read (see :mod:`conveyor.tracking.reads`).

    >>> with store.engine.begin() as conn:  # doctest: +SKIP
    ...     set_alias(conn, "clf", "production", 3, user="ci")
    ...     events.append(conn, "alias.moved", "clf@production", {"to": 3})
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.tracking.reads import Execute

if TYPE_CHECKING:
    import sqlalchemy as sa


@dataclass(frozen=True)
class Event:
    id: int
    time: float
    kind: str
    subject: str
    data: dict[str, Any]


def append(
    conn: sa.Connection,
    kind: str,
    subject: str,
    data: dict[str, Any] | None = None,
    *,
    at: float | None = None,
) -> int:
    """Append one event on ``conn`` (in its transaction); its id."""
    from conveyor.tracking import tables as t

    row = {
        "time": time.time() if at is None else at,
        "kind": kind,
        "subject": subject,
        "data": json.dumps(data or {}, sort_keys=True, default=str),
    }
    key = conn.execute(t.events.insert().values(**row)).inserted_primary_key
    assert key is not None  # an insert of one row always has one
    return int(key[0])


def read(execute: Execute, *, subject: str | None = None, kind: str | None = None) -> list[Event]:
    """Events, oldest first; only those of ``subject`` and/or ``kind`` when given."""
    where, params = [], {}
    if subject is not None:
        where.append("subject = :s")
        params["s"] = subject
    if kind is not None:
        where.append("kind = :k")
        params["k"] = kind
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = execute(f"SELECT id, time, kind, subject, data FROM events{clause} ORDER BY id", params)
    return [Event(int(i), float(ts), k, s, json.loads(d or "{}")) for i, ts, k, s, d in rows]
