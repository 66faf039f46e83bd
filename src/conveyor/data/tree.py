"""Trees: the manifest of a tracked folder, stored as an object of its own.

A tree is the sorted list of (relative path, oid, size, executable) of every file under the
folder. It is serialised as compact JSON with a fixed key order, so the same folder always gives
the same bytes and the same oid. Pointers name a tree as ``<oid>.tree``.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from conveyor.data import hashing
from conveyor.foundation.errors import DataError
from conveyor.foundation.paths import check_path

TREE_SUFFIX = ".tree"


class Entry(NamedTuple):
    path: str
    oid: str
    size: int
    executable: bool = False


class Tree(NamedTuple):
    entries: tuple[Entry, ...]

    @classmethod
    def of(cls, entries: list[Entry]) -> Tree:
        return cls(tuple(sorted(entries, key=lambda e: e.path)))

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    def to_bytes(self) -> bytes:
        rows = [[e.path, e.oid, e.size, int(e.executable)] for e in self.entries]
        return json.dumps({"tree": 1, "entries": rows}, separators=(",", ":")).encode()

    def oid(self) -> str:
        return hashing.hash_bytes(self.to_bytes())

    def by_path(self) -> dict[str, Entry]:
        return {e.path: e for e in self.entries}

    @classmethod
    def from_bytes(cls, data: bytes, *, oid: str = "?") -> Tree:
        try:
            doc = json.loads(data)
            rows = doc["entries"]
            entries = tuple(Entry(str(p), str(o), int(s), bool(x)) for p, o, s, x in rows)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"tree object {oid} is not a valid tree",
                hint="run `conveyor fsck`; `conveyor pull` fetches a good copy",
            ) from exc
        check_entries(entries, f"tree {oid}")
        return cls(entries)


# A pre-filter over the NUL-joined list of every path of a tree (one regex pass instead of one
# check per entry): a path that is empty, absolute, climbs with "..", holds "." or "" parts or a
# newline, or any name that check_path might fold into .git, .conveyor or a pointer (a part
# starting ".g"/".c" in any case, "~" as in GIT~1, a backslash, a non-ASCII code point HFS+
# ignores, a name ending in "cvy"). A hit only sends the tree to check_path, entry by entry,
# which alone decides: the filter may over-match, never under-match.
_BAD_PATH = re.compile(
    r"(?:^|\0)(?:/|\0)|//|/(?:\0|$)|(?:^|/|\0)\.{1,2}(?:/|\0|$)|\n|^$|\0$"
    r"|(?:^|/|\0)\.[gGcC]|~|\\|[^\x00-\x7f]|(?i:cvy)[. ]*(?:\0|$)"
)
_HEX = re.compile(r"[0-9a-f]*")


def check_entries(entries: tuple[Entry, ...] | list[Entry], where: str) -> None:
    """Refuse entries whose path checkout must never write (see
    :func:`~conveyor.foundation.paths.check_path`) or whose hash is invalid (checked in bulk)."""
    paths = "\0".join(e.path for e in entries)
    if entries and (_BAD_PATH.search(paths) or paths.count("\0") != len(entries) - 1):
        for entry in entries:  # slow path: find the culprit for the message
            check_path(entry.path, where=where, what="entry", nested=True)
    oids = "".join(e.oid for e in entries)
    if len(oids) != 64 * len(entries) or not _HEX.fullmatch(oids):
        bad = next(e.oid for e in entries if not hashing.is_oid(e.oid))
        raise DataError(f"{where} names an invalid hash {bad!r}")


def split_ref(ref: str) -> tuple[str, bool]:
    """``<oid>.tree`` -> (oid, True); ``<oid>`` -> (oid, False)."""
    if ref.endswith(TREE_SUFFIX):
        return ref[: -len(TREE_SUFFIX)], True
    return ref, False
