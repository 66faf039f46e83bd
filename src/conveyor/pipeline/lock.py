"""``conveyor.lock``: what each stage last ran with (cmd, dep hashes, param values, out hashes).

Written whole, atomically, after every stage that finishes, so an interruption never leaves a
half-written entry. Stages, deps, outs and params are sorted, so a change shows in ``git diff``
as the lines that changed and nothing else.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from conveyor.data.hashing import is_oid
from conveyor.foundation import atomic
from conveyor.foundation.errors import ConfigError, PathError
from conveyor.foundation.paths import CONTROL_DIR, check_path
from conveyor.pipeline.stage import Meta

FILE = "conveyor.lock"
SCHEMA = 1
HEADER = "# conveyor.lock: written by `conveyor run`. Commit it; do not edit it by hand.\n"


class Entry(NamedTuple):
    cmd: tuple[str, ...]
    deps: dict[str, Meta]
    params: dict[str, dict[str, Any]]  # params file -> dotted key -> value
    outs: dict[str, Meta]


def load(root: Path) -> dict[str, Entry]:
    path = root / FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{FILE} cannot be read: {exc}") from exc
    return _cached_parse(root, text)


def _cached_parse(root: Path, text: str) -> dict[str, Entry]:
    """Parse, or take the last parse of the same text from ``.conveyor/cache/lock.json``.

    YAML costs a fifth of a no-op run's time; the JSON copy, keyed by a hash of the lock's
    text, makes ``status`` and no-op runs skip it. A stale or corrupt copy is never used.
    """
    from conveyor.data import hashing

    cache = root / CONTROL_DIR / "cache" / "lock.json"
    key = hashing.hash_bytes(text.encode())
    try:
        saved = json.loads(cache.read_bytes())
        if saved["key"] == key:
            entries = {name: _entry(raw) for name, raw in saved["stages"].items()}
            for name, entry in entries.items():  # a copy saved before outs were checked
                _check_outs(entry, FILE, name)
            return entries
    except (OSError, ValueError, KeyError, TypeError, AttributeError, PathError):
        pass  # a refused out: the parse below says where
    entries = parse(text, FILE)
    _save_cache(root, key, entries)
    return entries


def _save_cache(root: Path, key: str, entries: Mapping[str, Entry]) -> None:
    stages = {
        name: {
            "cmd": list(e.cmd),
            "deps": [{"path": p, **m._asdict()} for p, m in e.deps.items()],
            "params": e.params,
            "outs": [{"path": p, **m._asdict()} for p, m in e.outs.items()],
        }
        for name, e in entries.items()
    }
    try:
        data = json.dumps({"key": key, "stages": stages}, allow_nan=False).encode()
        cache = root / CONTROL_DIR / "cache" / "lock.json"
        atomic.write_bytes(cache, data, durable=False, parents=True)
    except (OSError, TypeError, ValueError):
        pass  # values JSON cannot hold exactly (dates, NaN): parse the YAML every time


def parse(text: str, source: str) -> dict[str, Entry]:
    """Entries of a lock file's text (``source`` names it in errors)."""
    from conveyor.foundation import yamlio

    hint = f"restore it from git (`git checkout {FILE}`) or delete it to re-run every stage"
    try:
        doc = yamlio.load(text, source)
        data = doc.data or {}
    except ConfigError as exc:  # a merge conflict left in it, most often
        raise ConfigError(exc.message, hint=hint) from exc
    try:
        stages = data.get("stages") or {}
        names = list(stages.keys())
    except (AttributeError, TypeError) as exc:
        raise ConfigError(f"{source} is malformed ({exc})", hint=hint) from exc
    entries = {}
    for name in names:
        try:
            entries[str(name)] = _entry(stages[name])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            where = doc.where("stages", str(name))  # the stage's line: a lock may hold hundreds
            raise ConfigError(
                f"{source} is malformed ({where}: stage {name!r}: {exc})", hint=hint
            ) from exc
    for name, entry in entries.items():
        _check_outs(entry, doc.where("stages", name, "outs"), name)
    return entries


def _check_outs(entry: Entry, where: str, name: str) -> None:
    """Refuse an out that conveyor must never write (checkout restores outs from the lock)."""
    for path in entry.outs:
        check_path(
            path,
            where=f"{where}: stage {name!r}",
            what="out",
            hint=f"restore {FILE} from git (`git checkout {FILE}`) or delete it to re-run every "
            "stage",
        )


def _entry(raw: Mapping[str, Any]) -> Entry:
    cmd = raw["cmd"]
    return Entry(
        (cmd,) if isinstance(cmd, str) else tuple(cmd),
        {str(d["path"]): _meta(d) for d in raw.get("deps", [])},
        {str(f): dict(v or {}) for f, v in (raw.get("params") or {}).items()},
        {str(o["path"]): _meta(o) for o in raw.get("outs", [])},
    )


def _meta(raw: Mapping[str, Any]) -> Meta:
    """A dep's or out's hash, size and file count, each of its type: every command that reads
    the lock (push, pull, gc, checkout) takes the hash as an object id."""
    oid = raw["hash"]
    if not isinstance(oid, str) or not is_oid(oid.removesuffix(".tree")):
        raise ValueError(f"{raw.get('path')!r} has hash {oid!r}, not an object id")
    size, nfiles = raw["size"], raw["nfiles"]
    if type(size) is not int or type(nfiles) is not int or size < 0 or nfiles < 0:
        raise ValueError(f"{raw.get('path')!r} has size {size!r} and nfiles {nfiles!r}")
    return Meta(oid, size, nfiles)


def dump(entries: Mapping[str, Entry]) -> str:
    """The lock's text: YAML, sorted, with JSON-quoted scalars where YAML would misread them."""
    lines = [HEADER.rstrip("\n"), f"schema: {SCHEMA}", "stages:" + ("" if entries else " {}")]
    for name in sorted(entries):
        e = entries[name]
        lines.append(f"  {_scalar(name)}:")
        if len(e.cmd) == 1:
            lines.append(f"    cmd: {_scalar(e.cmd[0])}")
        else:
            lines.append("    cmd:")
            lines.extend(f"      - {_scalar(c)}" for c in e.cmd)
        for label, metas in (("deps", e.deps), ("outs", e.outs)):
            if not metas:
                continue
            lines.append(f"    {label}:")
            for path in sorted(metas):
                m = metas[path]
                lines.append(f"      - path: {_scalar(path)}")
                lines.append(f"        hash: {m.hash}")
                lines.append(f"        size: {m.size}")
                lines.append(f"        nfiles: {m.nfiles}")
        if e.params:
            lines.append("    params:")
            for file in sorted(e.params):
                lines.append(f"      {_scalar(file)}:")
                for key in sorted(e.params[file]):
                    lines.append(f"        {_scalar(key)}: {_value(e.params[file][key])}")
    return "\n".join(lines) + "\n"


def save(root: Path, entries: Mapping[str, Entry]) -> None:
    from conveyor.data import hashing

    text = dump(entries)
    atomic.write_text(root / FILE, text)
    _save_cache(root, hashing.hash_bytes(text.encode()), entries)


_PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./@ =+,")


def _scalar(text: str) -> str:
    """``text`` bare when YAML reads it back as the same string, else JSON-quoted."""
    plain = (
        text
        and set(text) <= _PLAIN
        and text[0] not in "-+.,@0123456789 "  # numbers, and what YAML cannot start a word with
        and text[-1] != " "
        and text.lower() not in ("true", "false", "yes", "no", "on", "off", "null", "y", "n", "=")
    )
    return text if plain else _quote(text)


def _quote(text: str) -> str:
    """JSON quoting, but ``\\UXXXXXXXX`` past U+FFFF: YAML refuses JSON's surrogate pairs."""
    return "".join(
        c if c < "\x80" else f"\\u{ord(c):04x}" if c <= "\uffff" else f"\\U{ord(c):08x}"
        for c in json.dumps(text, ensure_ascii=False)
    )


def _value(value: Any) -> str:
    """A param value in YAML flow style that reads back as the same value and type."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, datetime.date):  # and datetime: YAML reads an ISO timestamp back
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return "-.inf" if value < 0 else ".inf"
        text = repr(value)
        # YAML 1.1 reads 1e-05 as a string: it wants a dot in the mantissa.
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ", ".join(f"{_quote(str(k))}: {_value(v)}" for k, v in items) + "}"
    return _quote(str(value))
