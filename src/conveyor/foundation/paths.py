"""Where a project lives, and keeping every path a user names inside it.

Paths that a repository supplies (pointers, ``conveyor.lock``, stage outs, tree entries) are
data an attacker may have written: :func:`check_path` is the one rule for all of them (never
``.git``, never conveyor's own folder or control files, never out of the project), and
:func:`check_place` adds what only the disk can tell (a folder on the way that is a symbolic
link out of the project).
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import NamedTuple

from conveyor.foundation.errors import NotAProjectError, PathError

CONTROL_DIR = ".conveyor"
GIT_DIR = ".git"
POINTER_SUFFIX = ".cvy"
# Files at the project's root that only conveyor (or the user, by hand) writes.
CONTROL_FILES = frozenset({"conveyor.yaml", "conveyor.lock"})


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
    why = _in_own_folder(candidate.relative_to(root).as_posix())
    if why is not None:
        raise PathError(f"{what} {path} {why}", hint="conveyor never reads or writes there")
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


def _refusal(rel: str, *, nested: bool = False) -> str | None:
    """Why conveyor must never write to ``rel`` (a relative, normal path), or None.

    Names are compared as the filesystem that would hold them sees them (:func:`_fold`).
    """
    why = _in_own_folder(rel)
    if why is not None:
        return why
    name = _fold(rel.replace("\\", "/").rpartition("/")[2])
    if name.endswith(POINTER_SUFFIX):
        return "is a conveyor pointer file"
    if not nested and "/" not in rel and name in CONTROL_FILES:
        return "is one of the project's control files"
    return None


# Code points HFS+ leaves out of a name when it compares two (git's is_hfs_dotgit list):
# ".g\u200cit" is ".git" there.
_HFS_IGNORED = dict.fromkeys(
    [0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)


def _fold(part: str) -> str:
    """``part`` as the least strict filesystem it may land on compares it: without case (macOS,
    Windows), without the code points HFS+ ignores, and without the trailing dots and spaces
    NTFS drops (``.git.`` and ``.git `` are ``.git`` there)."""
    return unicodedata.normalize("NFC", part.translate(_HFS_IGNORED)).rstrip(". ").casefold()


def _in_own_folder(rel: str) -> str | None:
    # A backslash is a separator on Windows: ``..\\.git\\hooks`` in a pointer is git's folder
    # there, though one odd name on this machine.
    parts = rel.replace("\\", "/").split("/")
    for i, part in enumerate(parts):
        if part == "..":
            return "climbs out of its folder (a backslash is a separator on Windows)"
        folded = _fold(part)
        if folded in (GIT_DIR, "git~1", CONTROL_DIR):
            folder = "conveyor's own folder" if folded == CONTROL_DIR else "git's own folder"
            return f"is {folder}" if i == len(parts) - 1 else f"is inside {folder} {part}"
    return None


_NEVER = "conveyor never writes there"
_NEVER_HINT = (
    "a path conveyor writes must be data inside the project, outside .git and .conveyor; "
    "restore the file that names it from a trusted copy"
)


def check_path(
    rel: str, *, where: str, what: str = "path", nested: bool = False, hint: str | None = None
) -> str:
    """Refuse a stored path that conveyor must never write to or delete.

    ``rel`` is relative to the project's root (``nested``: to a tracked folder, as a tree's
    entries are). Refused: anything absolute or climbing out (``..``); any ``.git`` or
    ``.conveyor`` folder on the way; a pointer file (``*.cvy``); and at the root
    ``conveyor.yaml`` and ``conveyor.lock``. ``where`` (``file:line``) starts the message.
    """
    try:
        check_relative(rel, where=where)
    except PathError:
        shown = repr(rel) if "\n" in rel or "\0" in rel else rel
        raise PathError(
            f"{where}: {what} {shown} must be relative and stay inside the project",
            hint=hint or _NEVER_HINT,
        ) from None
    why = _refusal(rel, nested=nested)
    if why is not None:
        raise PathError(f"{where}: {what} {rel} {why}; {_NEVER}", hint=hint or _NEVER_HINT)
    return rel


def check_place(root: Path, rel: str, *, where: str, what: str = "path") -> Path:
    """``root / rel`` after :func:`check_path`, refusing a folder on the way that is a symbolic
    link leaving the project (or landing in ``.git`` or ``.conveyor``).

    ``root`` is resolved. Only the folders above ``rel`` are looked at: what ``rel`` itself is
    on disk is for its writer to judge. A link that stays inside the project is followed.
    """
    check_path(rel, where=where, what=what)
    target = root / rel
    real = target.parent.resolve()
    if real == root:
        return target
    try:
        inner = real.relative_to(root).as_posix()
    except ValueError:
        why = "outside the project"
    else:
        found = _refusal(f"{inner}/{target.name}")
        if found is None:
            return target
        why = f"where {target.name} {found}"
    link = _first_link(root, rel)
    raise PathError(
        f"{where}: {what} {rel} lies under {link}, a symbolic link to {real}, {why}; "
        "conveyor does not write through it",
        hint=f"remove the link (`rm {link}`) or make it a real folder, then run the command again",
    )


def _first_link(root: Path, rel: str) -> str:
    """The first folder of ``rel`` (relative to ``root``) that is a symbolic link."""
    parts = rel.split("/")
    for n in range(1, len(parts)):
        if os.path.islink(root.joinpath(*parts[:n])):
            return "/".join(parts[:n])
    return rel.rpartition("/")[0]


def check_control(root: Path) -> None:
    """Refuse a ``.conveyor`` (or a folder in it, its cache or its objects) that is a link out of
    the project: a repository can commit one, and conveyor writes and deletes in there (temp
    files of dead writers, unreferenced objects). ``root`` is resolved; links inside it pass.
    """
    control = root / CONTROL_DIR
    # The objects' shard folders too: gc deletes in them (one listing of 256 names).
    for folder in (control, control / "cache", control / "cache" / "objects"):
        if os.path.islink(folder):
            _check_link(root, folder)
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                if entry.is_symlink():
                    _check_link(root, Path(entry.path))


def _check_link(root: Path, link: Path) -> None:
    real = link.resolve()
    if real == root or root in real.parents:
        inner = real.relative_to(root).as_posix()
        if not any(_fold(p) in (GIT_DIR, "git~1") for p in inner.split("/")):
            return
        where = "inside git's own folder"  # gc and the temp sweep would delete git's files
    else:
        # An experiment's copy (.conveyor/exps/ID) shares its project's cache, spool and logs:
        # a link into the .conveyor folder that holds the copy stays inside that project.
        owner = next((p for p in root.parents if p.name == CONTROL_DIR), None)
        if owner is not None and (real == owner or owner in real.parents):
            return
        where = "outside the project"
    shown = link.relative_to(root).as_posix()
    raise PathError(
        f"{shown} is a symbolic link to {real}, {where}; conveyor writes and deletes in there, "
        "so it refuses to run",
        hint=f"remove the link (`rm {shown}`): conveyor makes what it needs there again",
    )


def read_inside(root: Path, rel: str) -> bytes | None:
    """The bytes of the project's file ``rel``, or None if it is absent, not a regular file, or
    lies (through a symbolic link, its own or a folder's) outside the project or in ``.git`` or
    ``.conveyor``: what conveyor copies into a report must be the project's, never a key file a
    repository linked in. ``root`` is resolved."""
    real = (root / rel).resolve()
    try:
        inner = real.relative_to(root).as_posix()
    except ValueError:
        return None
    if inner == "." or _in_own_folder(inner) is not None or not real.is_file():
        return None
    try:
        return real.read_bytes()
    except OSError:
        return None
