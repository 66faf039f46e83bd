"""The run-cache: (command, dep hashes, params) -> the outs that combination produced.

Seen on any branch, a combination is restored from the object cache instead of run again. The
key is a hash over everything that decides what a stage writes (a stage's identity is not its
name: two branches renaming a stage share entries). Entries are small JSON files under
``.conveyor/cache/runs``, written atomically; a bad entry is a miss, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from conveyor.data import hashing
from conveyor.foundation import atomic
from conveyor.pipeline.stage import Meta, Stage


def key(
    stage: Stage, deps: Mapping[str, Meta | None], values: Mapping[tuple[str, str], Any]
) -> str:
    """The run-cache key of ``stage`` with these dep hashes and param values."""
    ident = {
        "cmd": list(stage.cmd),
        "wdir": stage.wdir,
        "env": [list(e) for e in stage.env],
        "deps": [[p, m.hash if m else None] for p, m in sorted(deps.items())],
        "params": [[f, k, values.get((f, k))] for f, k in sorted(stage.params)],
        "outs": sorted([o.path, o.persist] for o in stage.outs),
    }
    return hashing.hash_bytes(json.dumps(ident, sort_keys=True, default=str).encode())


class RunCache(Protocol):
    """Where run-cache entries live. Safe for several processes: entries are written whole."""

    def get(self, key: str) -> dict[str, Meta] | None: ...

    def put(self, key: str, outs: Mapping[str, Meta]) -> None: ...


class FolderRunCache:
    """Entries as files ``runs/ab/cdef...`` beside the object cache."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / hashing.object_path(key)

    def get(self, key: str) -> dict[str, Meta] | None:
        try:
            data = json.loads(self._path(key).read_bytes())
            return {path: Meta(h, int(size), int(n)) for path, h, size, n in data["outs"]}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, outs: Mapping[str, Meta]) -> None:
        rows = [[path, m.hash, m.size, m.nfiles] for path, m in sorted(outs.items())]
        atomic.write_bytes(self._path(key), json.dumps({"outs": rows}).encode(), parents=True)
