"""Params files (YAML, JSON, TOML): loading, dotted-key lookup and ``-S key=value`` overrides.

A param is named by its dotted key in ``params.yaml`` (``train.lr``) or, in another file, as
``other.yaml:train.lr``. A key may name a whole section: its value is then the mapping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

DEFAULT_FILE = "params.yaml"
MISSING: Any = object()  # the value of a key a params file does not hold


def split_name(name: str, default: str = DEFAULT_FILE) -> tuple[str, str]:
    """``other.yaml:train.lr`` -> ("other.yaml", "train.lr"); ``train.lr`` -> (default, ...)."""
    file, sep, key = name.rpartition(":")
    return (file, key) if sep else (default, name)


def load(path: Path, display: str) -> dict[str, Any]:
    """Read a params file by its suffix; a missing file reads as empty."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{display} cannot be read: {exc}") from exc
    return parse(text, path.suffix.lower(), display)


def parse(text: str, suffix: str, display: str) -> dict[str, Any]:
    """A params (or metrics) file's text, read by its suffix (``.yaml``, ``.json``, ``.toml``)."""
    try:
        if suffix == ".json":
            data = json.loads(text) if text.strip() else {}
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            from conveyor.foundation import yamlio

            data = yamlio.load(text, display).data or {}
        else:
            raise ConfigError(
                f"{display}: params files must be YAML, JSON or TOML",
                hint="name it with a .yaml, .yml, .json or .toml suffix",
            )
    except (ValueError, TypeError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"{display}: not valid {suffix[1:].upper()}: {exc}") from exc
    except RecursionError:  # json and tomllib recurse per level: [[[[...]]]] thousands deep
        raise ConfigError(
            f"{display}: not valid {suffix[1:].upper()}: nested too deeply",
            hint="no params or metrics file needs more than a few levels",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{display}: a params file must hold a mapping at the top")
    return data


def lookup(data: Mapping[str, Any], key: str) -> Any:
    """The value at dotted ``key``, or :data:`MISSING`."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


def require(data: Mapping[str, Any], key: str, where: str) -> Any:
    """Like :func:`lookup`, but an unknown key is a ConfigError naming the nearest key."""
    value = lookup(data, key)
    if value is MISSING:
        raise ConfigError(f"{where}: unknown param {key!r}", hint=did_you_mean(key, keys(data)))
    return value


def keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key, sections included (``train`` and ``train.lr``)."""
    out: list[str] = []
    for k, v in data.items():
        name = f"{prefix}{k}"
        out.append(name)
        if isinstance(v, Mapping):
            out.extend(keys(v, name + "."))
    return out


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaf values by dotted key: ``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def parse_override(text: str) -> tuple[str, str, Any]:
    """``-S train.lr=0.1`` -> (file, key, value); the value is read as a YAML scalar."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"-S {text}: expected KEY=VALUE", hint="for example: -S train.lr=0.1")
    file, key = split_name(name.strip())
    return file, key, parse_scalar(raw)


def parse_scalar(raw: str) -> Any:
    from conveyor.foundation import yamlio

    try:
        return yamlio.load(raw, "-S").data if raw.strip() else ""
    except ConfigError:
        return raw


def override(data: dict[str, Any], key: str, value: Any, where: str) -> dict[str, Any]:
    """A copy of ``data`` with ``key`` set; the key must exist (a typo would do nothing)."""
    import copy

    require(data, key, where)
    out = copy.deepcopy(data)
    node = out
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return out


def same(a: Any, b: Any) -> bool:
    """Equal as the lock records them (1 == 1.0 is not a change; "1" != 1 is).

    The lock writes mapping keys as strings, and NaN reads back as NaN: neither is a change.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b  # exact: floats would call 2**53 and 2**53 + 1 the same
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b) or (a != a and b != b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        sa = {str(k): v for k, v in a.items()}
        sb = {str(k): v for k, v in b.items()}
        return sa.keys() == sb.keys() and all(same(sa[k], sb[k]) for k in sa)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def show(value: Any) -> str:
    """A value as a user typed it (``0.1``, ``l1``, ``[1, 2]``), for messages."""
    if value is MISSING:
        return "(none)"
    if isinstance(value, str):
        # Quoted when bare it would read as another value: "1" -> 1 must not show as 1 -> 1.
        parsed = parse_scalar(value) if value.strip() else None
        return value if type(parsed) is str and parsed == value else json.dumps(value)
    return json.dumps(value, sort_keys=True, default=str)


@contextmanager
def applied(root: Path, overrides: list[tuple[str, str, Any]]) -> Iterator[None]:
    """Write ``-S`` overrides into their params files while a run lasts, then put them back.

    Stage commands read params files themselves, so an override must be in the file they read.
    Each file gets its original bytes back afterwards (also after Ctrl-C or SIGTERM), unless
    something else rewrote it meanwhile. Comments are not kept while the override is in place.
    """
    from conveyor.foundation import atomic

    originals: dict[str, bytes] = {}
    written: dict[str, bytes] = {}
    by_file: dict[str, list[tuple[str, Any]]] = {}
    for file, key, value in overrides:
        by_file.setdefault(file, []).append((key, value))
    try:
        for file, pairs in by_file.items():
            path = root / file
            data = load(path, file)
            for key, value in pairs:
                data = override(data, key, value, f"-S {key}")
            text = dumps(data, path.suffix.lower(), file)
            originals[file] = path.read_bytes()
            atomic.write_bytes(path, text)
            written[file] = text
        yield
    finally:
        for file, text in written.items():
            path = root / file
            try:
                if path.read_bytes() == text:
                    atomic.write_bytes(path, originals[file])
            except FileNotFoundError:
                atomic.write_bytes(path, originals[file])


def dumps(data: dict[str, Any], suffix: str, display: str) -> bytes:
    if suffix == ".json":
        return (json.dumps(data, indent=2) + "\n").encode()
    if suffix in (".yaml", ".yml"):
        from conveyor.foundation import yamlio

        return yamlio.dump(data).encode()
    raise ConfigError(
        f"-S cannot override keys of {display}: conveyor writes overrides only to YAML and JSON",
        hint="edit the file instead, or move these params to params.yaml",
    )
