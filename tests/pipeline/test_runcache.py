"""The run-cache: what a stage may be restored from instead of run again."""

from __future__ import annotations

import json
import re

import pytest

from conveyor.pipeline.runcache import (
    MAX_ENTRY,
    BadEntry,
    Entry,
    FolderRunCache,
    dump,
    key_of,
    parse,
)
from conveyor.pipeline.stage import Meta
from tests.conftest import Project


def test_a_persistent_out_is_never_restored_from_the_run_cache(project: Project) -> None:
    project.write("params.yaml", "p: 1\n")
    project.write(
        "conveyor.yaml",
        "stages:\n  s:\n    cmd: echo ${p} >> log.txt\n    params: [p]\n"
        "    outs:\n      - log.txt: {persist: true}\n",
    )
    project.ok("run")
    project.ok("run", "-S", "p=2")
    out = project.ok("run")
    assert "restored" not in out
    assert (project.root / "log.txt").read_text().split() == ["1", "2", "1"]


# -- entries checked before they are trusted (pure) ----------------------------------------

OID = "ab" * 32


def _entry(outs: list[list[object]], declared: list[str] | None = None) -> tuple[str, bytes]:
    ident = {"cmd": ["train"], "outs": [[p, False] for p in (declared or [o[0] for o in outs])]}
    key = key_of(ident)
    return key, json.dumps({"stage": ident, "outs": outs}).encode()


def test_a_stored_entry_parses_back_to_what_was_written() -> None:
    ident = {"cmd": ["train"], "params": [["params.yaml", "lr", 0.1]], "outs": [["m", False]]}
    entry = Entry(key_of(ident), ident, {"m": Meta(OID + ".tree", 10, 2)})
    assert parse(entry.key, dump(entry)) == entry


@pytest.mark.parametrize(
    ("outs", "declared", "why"),
    [
        ([["../x", OID, 1, 1]], None, "must be relative and stay inside the project"),
        ([["/etc/passwd", OID, 1, 1]], None, "must be relative"),
        ([[".git/hooks/pre-commit", OID, 1, 1]], None, "git's own folder"),
        ([[".conveyor/config", OID, 1, 1]], None, "conveyor's own folder"),
        ([["m.cvy", OID, 1, 1]], None, "pointer"),
        ([["m", "../../x", 1, 1]], None, "is not an object id"),
        ([["m", OID, -1, 1]], None, "whole numbers"),
        ([["m", OID, True, 1]], None, "whole numbers"),
        ([["m", OID, 1]], None, "is not [path, hash, size, nfiles]"),
        ([], [], "names no outs"),
        ([["m", OID, 1, 1]], ["other"], "not the ones its stage identity declares"),
        ([["m", OID, 1, 1], ["m", OID, 1, 1]], ["m", "m"], "named twice"),
    ],
)
def test_a_bad_entry_is_refused_saying_why(
    outs: list[list[object]], declared: list[str] | None, why: str
) -> None:
    key, raw = _entry(outs, declared)
    with pytest.raises(BadEntry, match=re.escape(why)):
        parse(key, raw)


def test_an_entry_under_another_name_or_not_json_is_refused() -> None:
    key, raw = _entry([["m", OID, 1, 1]])
    with pytest.raises(BadEntry, match="does not hash to its name"):
        parse("cd" * 32, raw)
    with pytest.raises(BadEntry, match="not JSON"):
        parse(key, b"{")
    with pytest.raises(BadEntry, match="no stage identity"):
        parse(key, json.dumps({"outs": [["m", OID, 1, 1]]}).encode())  # an older entry
    with pytest.raises(BadEntry, match="not a run-cache key"):
        parse("../../x", raw)
    with pytest.raises(BadEntry, match="more than"):
        parse(key, b" " * (MAX_ENTRY + 1))


def test_the_key_is_the_hash_of_the_identity_an_entry_stores(project: Project) -> None:
    project.write(
        "conveyor.yaml", "stages:\n  s:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n"
    )
    project.ok("run")
    folder = project.root / ".conveyor" / "cache" / "runs"
    cache = FolderRunCache(folder)
    (key,) = list(cache.iter_keys())
    entry = cache.read(key)
    assert key_of(entry.stage) == key
    assert entry.stage["cmd"] == ["echo hi > out.txt"]
    assert set(entry.outs) == {"out.txt"}


def test_an_entry_nested_past_the_stack_is_refused_not_a_crash() -> None:
    key, _ = _entry([["m", OID, 1, 1]])
    deep = b'{"stage": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    assert len(deep) < MAX_ENTRY
    with pytest.raises(BadEntry, match="not JSON"):
        parse(key, deep)
