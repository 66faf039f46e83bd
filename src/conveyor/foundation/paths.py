"""Where a project lives, and keeping every path a user names inside it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from conveyor.foundation.errors import NotAProjectError, PathError

CONTROL_DIR = ".conveyor"


class ProjectPaths(NamedTuple):
    """The fixed places inside a project's root."""

    root: Path

    @property
    def control(self) -> Path:
        return self.root / CONTROL_DIR

    @property
    def config(self) -> Path:
        return self.control / "config"

    @property
    def cache(self) -> Path:
        return self.control / "cache"

    @property
    def objects(self) -> Path:
        return self.cache / "objects"

    @property
    def tmp(self) -> Path:
        return self.control / "tmp"

    @property
    def state_db(self) -> Path:
        return self.control / "state.db"

    @property
    def lock(self) -> Path:
        return self.control / "lock"

    @property
    def quarantine(self) -> Path:
        return self.cache / "quarantine"


def find_root(start: Path | None = None) -> Path:
    """Return the nearest directory at or above ``start`` that holds ``.conveyor/``."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONTROL_DIR).is_dir():
            return candidate
    raise NotAProjectError(
        f"{here} is not inside a conveyor project (no {CONTROL_DIR}/ found here or above)",
        hint="run `conveyor init` at the project's root",
    )


def inside(root: Path, path: str | os.PathLike[str], *, what: str = "path") -> Path:
    """Resolve ``path`` (relative to the working directory) and refuse it if it leaves ``root``.

    Symlinks are resolved first, so a link pointing out of the project is refused too.
    """
    resolved = Path(os.path.abspath(path))
    # Resolve the parent only: a tracked path may be a symlink created by checkout.
    real_parent = resolved.parent.resolve()
    candidate = real_parent / resolved.name
    root = root.resolve()
    if candidate != root and root not in candidate.parents:
        raise PathError(
            f"{what} {path} is outside the project at {root}",
            hint="conveyor only tracks paths inside the project's root",
        )
    if candidate == root or candidate.parts[len(root.parts)] == CONTROL_DIR:
        raise PathError(f"{what} {path} is conveyor's own folder or the project root itself")
    return candidate


def relpath(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` with forward slashes, as stored in pointers and trees."""
    return path.relative_to(root).as_posix()


def check_relative(rel: str, *, where: str) -> str:
    """Refuse a stored relative path that is absolute or climbs out with ``..``."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise PathError(f"{where}: path {rel!r} must be relative and stay inside its folder")
    if "\n" in rel or "\x00" in rel:
        raise PathError(f"{where}: path {rel!r} contains a newline or NUL byte")
    return rel
