"""Pointer files (``PATH.cvy``): the small YAML file committed to git in place of the data.

path: raw            # the tracked file or folder, relative to the pointer's folder
hash: 9f2c...e1.tree # its oid; ``.tree`` marks a folder
size: 536870912      # total bytes
nfiles: 20000        # files in the folder (1 for a file)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from conveyor.data import hashing
from conveyor.data.tree import TREE_SUFFIX, split_ref
from conveyor.foundation import atomic, yamlio
from conveyor.foundation.errors import ConfigError, PathError
from conveyor.foundation.paths import CONTROL_DIR, check_path, check_relative

SUFFIX = ".cvy"
HEADER = "# Tracked by conveyor: commit this file; the data lives in the cache and on remotes.\n"
FIELDS = ("path", "hash", "size", "nfiles")


class Pointer(NamedTuple):
    file: Path  # the .cvy file, absolute
    path: str  # tracked path relative to the pointer's folder
    oid: str
    is_tree: bool
    size: int
    nfiles: int

    @property
    def data_path(self) -> Path:
        return self.file.parent / self.path

    @property
    def ref(self) -> str:
        return self.oid + (TREE_SUFFIX if self.is_tree else "")

    def to_text(self) -> str:
        if _plain(self.path):
            body = (
                f"path: {self.path}\nhash: {self.ref}\nsize: {self.size}\nnfiles: {self.nfiles}\n"
            )
            return HEADER + body
        fields = {"path": self.path, "hash": self.ref, "size": self.size, "nfiles": self.nfiles}
        return HEADER + yamlio.dump(fields)

    def write(self) -> None:
        atomic.write_text(self.file, self.to_text())


def pointer_file_for(data_path: Path) -> Path:
    return data_path.with_name(data_path.name + SUFFIX)


def parse(text: str, file: Path, display: str, root: Path | None = None) -> Pointer:
    """Parse a pointer's text; every problem is a ConfigError naming the file and line.

    With the project's ``root``, the tracked path is checked as a path of the project (never
    ``.git``, ``.conveyor`` or a control file); without, only inside the pointer's folder.
    """
    try:
        try:
            return _parse(text, file, display, root)
        except ConfigError:
            # The fast path keeps no line numbers: parse again with YAML to say where.
            return _parse(text, file, display, root, fast=False)
    except ConfigError as exc:
        if exc.hint:
            raise
        raise ConfigError(exc.message, hint=FIX.format(file=display)) from exc


FIX = "restore it from git (`git checkout -- {file}`) or re-create it with `conveyor add`"


def _parse(text: str, file: Path, display: str, root: Path | None, *, fast: bool = True) -> Pointer:
    fast_data = _fast_parse(text) if fast else None
    doc = (
        yamlio.Located(fast_data, {}, display)
        if fast_data is not None
        else yamlio.load(text, display)
    )
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError(
            f"{display}: not a conveyor pointer (expected path, hash, size, nfiles)",
            hint="restore it from git (`git checkout -- FILE`) or re-create it with `conveyor add`",
        )
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{doc.where(unknown[0])}: unknown key {unknown[0]!r} in pointer")
    for key in ("path", "hash"):
        if not isinstance(data.get(key), str):
            raise ConfigError(
                f"{doc.where(key)}: pointer needs a text {key!r}",
                hint="restore it from git or re-create it with `conveyor add`",
            )
    oid, is_tree = split_ref(data["hash"])
    if not hashing.is_oid(oid):
        raise ConfigError(
            f"{doc.where('hash')}: {data['hash']!r} is not a conveyor hash (64 hex digits)",
            hint="restore the pointer from git or re-create it with `conveyor add`",
        )
    where = doc.where("path")
    try:
        check_relative(data["path"], where=where)  # before joining: "../x" must not cancel a part
        check_path(_in_project(file, data["path"], root), where=where, nested=root is None)
    except PathError as exc:
        raise ConfigError(exc.message, hint=exc.hint) from None
    numbers = {}
    for key in ("size", "nfiles"):
        value = data.get(key, 0)
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"{doc.where(key)}: {key} must be a whole number, not {value!r}")
        numbers[key] = value
    return Pointer(file, data["path"], oid, is_tree, numbers["size"], numbers["nfiles"])


def _in_project(file: Path, path: str, root: Path | None) -> str:
    """``path`` (relative to the pointer's folder) relative to ``root`` when it is known."""
    if root is None:
        return path
    try:
        folder = file.parent.relative_to(root).as_posix()
    except ValueError:
        return path
    return path if folder == "." else f"{folder}/{path}"


_LINE = re.compile(r"(path|hash|size|nfiles): (\S+)")
_SAFE = re.compile(r"[\w./-]+")
_SPECIAL = re.compile(r"[-+.]?[\d._]+(e[-+]?\d+)?|true|false|yes|no|on|off|null|~|-.*", re.I)


def _plain(value: str) -> bool:
    """True if ``value`` reads back from YAML as the same string without quotes."""
    return bool(_SAFE.fullmatch(value)) and not _SPECIAL.fullmatch(value)


def _fast_parse(text: str) -> dict[str, object] | None:
    """Parse the exact shape conveyor writes without a YAML parser; None for anything else."""
    data: dict[str, object] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None or match.group(1) in data:
            return None
        key, value = match.groups()
        if key in ("size", "nfiles"):
            # int() refuses "²" and 5000 digits: such values take the YAML path and its errors.
            if not (value.isascii() and value.isdigit()) or len(value) > 20:
                return None
            data[key] = int(value)
        elif _plain(value):
            data[key] = value
        else:
            return None
    return data if len(data) == len(FIELDS) else None


def load(file: Path, root: Path) -> Pointer:
    display = os.path.relpath(file, root)
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise PathError(f"{display} does not exist", hint="run `conveyor add PATH` first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{display} cannot be read: {exc}") from exc
    return parse(text, file, display, root)


def discover(root: Path) -> Iterator[Path]:
    """Every ``*.cvy`` file in the workspace, without descending into tracked folders."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        except PermissionError:
            # Skipping it could hide pointers from gc, which would then delete their data.
            raise PathError(
                f"cannot read folder {folder} while looking for pointers: permission denied",
                hint="fix its permissions, or name the pointers to use explicitly",
            ) from None
        names = {e.name for e in entries}
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.endswith(SUFFIX) and entry.is_file():
                yield Path(entry.path)
            elif (
                entry.is_dir(follow_symlinks=False)
                and entry.name not in (CONTROL_DIR, ".git")
                and entry.name + SUFFIX not in names
            ):
                stack.append(Path(entry.path))
