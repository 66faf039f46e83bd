"""The run-cache: (command, dep hashes, params) -> the outs that combination produced.

Seen on any branch, a combination is restored from the object cache instead of run again. The
key is a hash over everything that decides what a stage writes (a stage's identity is not its
name: two branches renaming a stage share entries). Entries are small JSON files under
``.conveyor/cache/runs``, written atomically; a bad entry is a miss, never an error.

An entry holds the identity its key hashes (``stage``) beside its outs, so an entry that came
from elsewhere (a remote, see :mod:`conveyor.pipeline.runshare`) can be checked against its own
name before it is trusted: :func:`parse` is that check, a pure function of the bytes.

>>> ident = {"cmd": ["echo"], "outs": [["a.txt", False]]}
>>> raw = dump(Entry(key_of(ident), ident, {"a.txt": Meta("ab" * 32, 3, 1)}))
>>> parse(key_of(ident), raw).outs["a.txt"].size
3
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from conveyor.data import hashing
from conveyor.foundation import atomic
from conveyor.foundation.errors import ConveyorError, DataError
from conveyor.pipeline.stage import Meta, Stage

MAX_ENTRY = 4 * 1024 * 1024  # bytes; an entry is a few hundred, one with 10,000 outs ~1 MiB


def identity(
    stage: Stage, deps: Mapping[str, Meta | None], values: Mapping[tuple[str, str], Any]
) -> dict[str, Any]:
    """What decides what ``stage`` writes: the value its run-cache key hashes."""
    return {
        "cmd": list(stage.cmd),
        "wdir": stage.wdir,
        "env": [list(e) for e in stage.env],
        "deps": [[p, m.hash if m else None] for p, m in sorted(deps.items())],
        "params": [[f, k, values.get((f, k))] for f, k in sorted(stage.params)],
        "outs": sorted([o.path, o.persist] for o in stage.outs),
    }


def key_of(ident: Mapping[str, Any]) -> str:
    """The run-cache key of an identity (JSON with sorted keys, hashed)."""
    return hashing.hash_bytes(json.dumps(ident, sort_keys=True, default=str).encode())


def key(
    stage: Stage, deps: Mapping[str, Meta | None], values: Mapping[tuple[str, str], Any]
) -> str:
    """The run-cache key of ``stage`` with these dep hashes and param values."""
    return key_of(identity(stage, deps, values))


@dataclass(frozen=True)
class Entry:
    """One run-cache entry: its key, the identity the key hashes, and the outs it restores."""

    key: str
    stage: Mapping[str, Any]
    outs: Mapping[str, Meta]


class BadEntry(DataError):
    """An entry that is not what its name says, or not one at all."""


def dump(entry: Entry) -> bytes:
    """An entry as stored: canonical JSON (sorted keys, sorted outs)."""
    rows = [[path, m.hash, m.size, m.nfiles] for path, m in sorted(entry.outs.items())]
    return json.dumps({"stage": entry.stage, "outs": rows}, sort_keys=True, default=str).encode()


def parse(key: str, raw: bytes) -> Entry:
    """The entry stored under ``key``, checked: :class:`BadEntry` says why it is refused.

    Refused: more than :data:`MAX_ENTRY` bytes; not JSON of the stored shape; an identity that
    does not hash to ``key`` (a renamed or altered entry); outs other than the identity's;
    an out path that is absolute, climbs out, or names ``.git``, ``.conveyor``, a pointer or a
    control file; a hash that is not an object id; a negative size or file count.
    """
    from conveyor.foundation.paths import check_path

    if not hashing.is_oid(key):
        raise BadEntry(f"{key!r} is not a run-cache key")
    if len(raw) > MAX_ENTRY:
        raise BadEntry(f"it is {len(raw)} bytes, more than {MAX_ENTRY} an entry may be")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nested past the stack
        raise BadEntry(f"it is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("stage"), dict):
        raise BadEntry("it has no stage identity (written by an older conveyor, or not an entry)")
    stage, rows = data["stage"], data.get("outs")
    if key_of(stage) != key:
        raise BadEntry("its stage identity does not hash to its name")
    if not isinstance(rows, list) or not rows:
        raise BadEntry("it names no outs")
    outs: dict[str, Meta] = {}
    for row in rows:
        if not (isinstance(row, list) and len(row) == 4):
            raise BadEntry(f"out {row!r} is not [path, hash, size, nfiles]")
        path, ref, size, nfiles = row
        if not isinstance(path, str) or path in outs:
            raise BadEntry(f"out {path!r} is not a path, or is named twice")
        try:
            check_path(path, where="run-cache entry", what="out")
        except ConveyorError as exc:
            raise BadEntry(exc.message) from None
        if not isinstance(ref, str) or not hashing.is_oid(ref.removesuffix(".tree")):
            raise BadEntry(f"out {path}: {ref!r} is not an object id")
        if not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (size, nfiles)
        ):
            raise BadEntry(f"out {path}: size and file count must be whole numbers, 0 or more")
        outs[path] = Meta(ref, size, nfiles)
    declared = stage.get("outs")
    if not isinstance(declared, list) or sorted(outs) != sorted(
        o[0] for o in declared if isinstance(o, list) and o
    ):
        raise BadEntry("its outs are not the ones its stage identity declares")
    return Entry(key, stage, outs)


class RunCache(Protocol):
    """Where run-cache entries live. Safe for several processes: entries are written whole."""

    def get(self, key: str) -> dict[str, Meta] | None: ...

    def put(self, key: str, outs: Mapping[str, Meta], stage: Mapping[str, Any]) -> None: ...


class FolderRunCache:
    """Entries as files ``runs/ab/cdef...`` beside the object cache."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / hashing.object_path(key)

    def get(self, key: str) -> dict[str, Meta] | None:
        try:
            data = json.loads(self.path(key).read_bytes())
            return {path: Meta(h, int(size), int(n)) for path, h, size, n in data["outs"]}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, outs: Mapping[str, Meta], stage: Mapping[str, Any]) -> None:
        self.write(Entry(key, stage, outs))

    def write(self, entry: Entry) -> None:
        """Store ``entry`` atomically under its key (a valid object id: never a path)."""
        if not hashing.is_oid(entry.key):
            raise BadEntry(f"{entry.key!r} is not a run-cache key")
        atomic.write_bytes(self.path(entry.key), dump(entry), parents=True)

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def iter_keys(self) -> Iterator[str]:
        """Every entry's key, skipping temp files and anything else."""
        try:
            shards = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return
        for shard in shards:
            if not hashing.is_shard(shard):
                continue
            try:
                names = sorted(os.listdir(self.folder / shard))
            except NotADirectoryError:
                continue
            for name in names:
                found = hashing.oid_at(shard, name)
                if found:
                    yield found

    def read(self, key: str) -> Entry:
        """The entry stored under ``key``, checked as :func:`parse` does."""
        try:
            raw = self.path(key).read_bytes()
        except OSError as exc:
            raise BadEntry(f"it cannot be read ({exc.strerror})") from None
        return parse(key, raw)
