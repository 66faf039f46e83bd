"""The project's settings: ``.conveyor/config`` (committed) under ``.conveyor/config.local``.

Both are YAML mappings of sections. Keys are typed in dotted form on the command line
(``conveyor config cache.type hardlink``); a mistyped key is refused with the nearest valid one.
Remotes live under ``remote.NAME`` with a ``url`` and any options of their fsspec backend.

Secrets (a URL's password, ``*secret*``, ``*password*``, ``*token*`` keys, a remote's
credentials: see :mod:`conveyor.foundation.redact`) are refused in the committed file; they
belong in ``config.local``, which git ignores, or in the environment (``CONVEYOR_DB``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from conveyor.foundation import atomic, redact, yamlio
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

LINK_TYPES = ("reflink", "hardlink", "symlink", "copy")


def _link_list(value: Any) -> str:
    names = [v.strip() for v in str(value).split(",") if v.strip()]
    for name in names:
        if name not in LINK_TYPES:
            raise ValueError(f"unknown link type {name!r}; choose from {', '.join(LINK_TYPES)}")
    if not names:
        raise ValueError("give at least one link type")
    return ",".join(names)


def _positive_int(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be 1 or more")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError("must be true or false")


def _fsync_mode(value: Any) -> str:
    """``journal``, or a boolean: ``true`` -> ``always``, ``false`` -> ``never``."""
    if str(value).lower() in ("journal", "always", "never"):
        return str(value).lower()
    try:
        return "always" if _boolean(value) else "never"
    except ValueError:
        raise ValueError("must be journal, true or false") from None


class Key(NamedTuple):
    parse: Callable[[Any], Any]
    default: Any
    doc: str


KEYS: dict[str, Key] = {
    "core.remote": Key(str, None, "the remote that push, pull and gc --remote use by default"),
    "core.jobs": Key(_positive_int, None, "parallel transfers and hashing threads"),
    "core.fsync": Key(
        _fsync_mode,
        "journal",
        "when new objects reach the disk: journal (in the kernel's time, checked after a crash),"
        " true (before they count as stored) or false",
    ),
    "cache.type": Key(_link_list, "reflink,copy", "how checkout puts files in the workspace"),
    "db.url": Key(
        str, None, "the metadata store (default: SQLite in .conveyor/conveyor.db; CONVEYOR_DB wins)"
    ),
}
SECTIONS = sorted({k.split(".")[0] for k in KEYS} | {"remote"})


class Config:
    """Merged view of the committed and the local config file."""

    def __init__(self, control_dir: Path) -> None:
        self.files = {"project": control_dir / "config", "local": control_dir / "config.local"}
        self._raw = {level: self._read(path) for level, path in self.files.items()}
        for name, options in self.remotes().items():
            if "url" not in options:  # the url may be committed and the secrets local
                raise ConfigError(
                    f"remote {name!r} needs a url "
                    f"(it is in neither {self.files['project']} nor {self.files['local']})",
                    hint=f"conveyor remote add {name} URL",
                )

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {}
        if all(not s or s.startswith("#") for s in (line.strip() for line in text.splitlines())):
            return {}  # only comments: no need to load a YAML parser
        doc = yamlio.load(text, str(path))
        if doc.data is None:
            return {}
        if not isinstance(doc.data, dict):
            raise ConfigError(f"{path}: must be a mapping of sections (core:, cache:, remote:)")
        for section, body in doc.data.items():
            if section not in SECTIONS:
                raise ConfigError(
                    f"{doc.where(section)}: unknown section {section!r}",
                    hint=did_you_mean(section, SECTIONS),
                )
            if not isinstance(body, dict):
                raise ConfigError(f"{doc.where(section)}: section {section!r} must be a mapping")
            if section == "remote":
                self._check_remotes(doc, body)
                continue
            for key, value in body.items():
                dotted = f"{section}.{key}"
                self._parse(dotted, value, doc.where(section, str(key)))
        return doc.data

    def _check_remotes(self, doc: yamlio.Located, body: dict[str, Any]) -> None:
        for name, options in body.items():
            if not isinstance(options, dict):
                raise ConfigError(
                    f"{doc.where('remote', str(name))}: remote {name!r} must be a mapping "
                    "with a url and options",
                    hint=f"conveyor remote add {name} URL",
                )

    @staticmethod
    def _parse(dotted: str, value: Any, where: str) -> Any:
        key = KEYS.get(dotted)
        if key is None:
            raise ConfigError(f"{where}: unknown key {dotted!r}", hint=did_you_mean(dotted, KEYS))
        try:
            return key.parse(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: bad value {value!r} for {dotted}: {exc}") from None

    def get(self, dotted: str) -> Any:
        if dotted.startswith("remote."):
            _, name, option = [*dotted.split(".", 2), ""][:3]
            return self.remote(name).get(option) if option else self.remote(name)
        if dotted not in KEYS:
            raise ConfigError(f"unknown config key {dotted!r}", hint=did_you_mean(dotted, KEYS))
        section, key = dotted.split(".", 1)
        for level in ("local", "project"):
            body = self._raw[level].get(section) or {}
            if key in body:
                return self._parse(dotted, body[key], str(self.files[level]))
        return KEYS[dotted].default

    def set(self, dotted: str, value: Any, *, level: str = "project") -> None:
        section, _, key = dotted.partition(".")
        if section == "remote":
            name, _, option = key.partition(".")
            if not name or not option:
                raise ConfigError(f"config key {dotted!r} must look like remote.NAME.OPTION")
        else:
            value = self._parse(dotted, value, "command line")
        self.check_committable(dotted, value, level=level)
        raw = self._raw[level]
        node = raw
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        self._write(level)

    def check_committable(self, dotted: str, value: Any, *, level: str = "project") -> None:
        """Refuse a secret bound for the committed file (before a command changes anything)."""
        if level != "project" or not redact.secret(dotted, value):
            return
        what = "a password" if redact.url_has_password(value) else "a secret"
        env = "; or set CONVEYOR_DB in the environment" if dotted == "db.url" else ""
        raise ConfigError(
            f"{dotted}: refusing to write {what} into {self.files['project']}, "
            "which is committed to git",
            hint="add --local to the command: it writes .conveyor/config.local, which git "
            f"ignores{env}",
        )

    def unset(self, dotted: str, *, level: str = "project") -> None:
        parts = dotted.split(".")
        node: Any = self._raw[level]
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ConfigError(f"{dotted} is not set in {self.files[level]}")
        del node[parts[-1]]
        self._write(level)

    def level_of_remote(self, name: str) -> str:
        """Which file defines remote ``name`` ("project" wins over "local")."""
        self.remote(name)
        return "project" if name in (self._raw["project"].get("remote") or {}) else "local"

    def remotes(self) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for level in ("project", "local"):
            for name, options in (self._raw[level].get("remote") or {}).items():
                merged.setdefault(name, {}).update(options)
        return merged

    def remote(self, name: str) -> dict[str, Any]:
        remotes = self.remotes()
        if name not in remotes:
            known = ", ".join(sorted(remotes)) or "none configured"
            raise ConfigError(
                f"unknown remote {name!r} (known: {known})",
                hint=did_you_mean(name, remotes) or f"conveyor remote add {name} URL",
            )
        return remotes[name]

    def items(self) -> Mapping[str, Any]:
        flat: dict[str, Any] = {}
        for level in ("project", "local"):
            _flatten(self._raw[level], "", flat)
        return flat

    def committed_secrets(self) -> list[str]:
        """The keys whose secret is in the committed file (written there by hand, or by an
        older conveyor): the CLI warns about them."""
        flat: dict[str, Any] = {}
        _flatten(self._raw["project"], "", flat)
        return sorted(k for k, v in flat.items() if redact.secret(k, v))

    def _write(self, level: str) -> None:
        path = self.files[level]
        # The local file is where secrets go: readable by its owner only.
        mode = 0o600 if level == "local" else 0o644
        atomic.write_text(path, yamlio.dump(self._raw[level]), mode=mode)


def _flatten(node: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, dotted + ".", out)
        else:
            out[dotted] = value
