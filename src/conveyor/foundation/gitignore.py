"""``.conveyor/.gitignore``: everything under ``.conveyor/`` but ``config`` is one clone's own.

The object cache, the memo, the embedded database, logs, the spool, experiment copies, model
packages checked out for loading (binaries) and the prediction log (which holds the requests'
inputs) must never reach git through an ordinary ``git add -A``. A project made by an older
conveyor lacks some of these lines: :func:`ensure` adds what is missing and keeps the user's own.
"""

from __future__ import annotations

import os
from pathlib import Path

from conveyor.foundation import atomic
from conveyor.foundation.paths import CONTROL_DIR

NAME = ".gitignore"
HEADER = "# conveyor's local state: never commit these."
LINES = (
    "/cache/",
    "/tmp/",
    "/state.db*",
    "/lock",
    "/config.local",
    "/logs/",
    "/spool/",
    "/conveyor.db*",
    "/exps/",
    "/queue/",
    "/models/",
    "/predictions/",
    "/feedback/",
    "/monitor/",
)


def text() -> str:
    """The whole file, as ``conveyor init`` writes it."""
    return "\n".join((HEADER, *LINES)) + "\n"


def missing(current: str) -> list[str]:
    """The lines ``current`` lacks; ``models/`` or ``/models`` count as ``/models/`` (pure)."""
    have = {_bare(line) for line in current.splitlines()}
    return [line for line in LINES if _bare(line) not in have]


def ensure(control: Path) -> list[str]:
    """Add the lines ``control/.gitignore`` lacks, after the user's; the lines it added.

    Nothing happens outside a project, or where the file cannot be written (a read-only
    checkout commits nothing either): every command calls this, and none may fail for it.
    """
    path = control / NAME
    try:
        # Not through a link: a repository may commit .gitignore as one to /proc/self/environ
        # or a key file, whose text this would copy into a file the user is told to commit.
        # The command then refuses the project (a link out of it in .conveyor).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        current = None
    except OSError:
        return []
    else:
        try:
            with os.fdopen(fd, "rb") as f:
                current = f.read().decode()
        except (OSError, UnicodeDecodeError):
            return []
    if current is None:
        if control.name != CONTROL_DIR or not control.is_dir():
            return []  # not a project's folder (a test's config, say): nothing of ours to guard
        added, new = list(LINES), text()
    else:
        added = missing(current)
        if not added:
            return []
        sep = "" if not current or current.endswith("\n") else "\n"
        new = current + sep + "\n".join(added) + "\n"
    try:
        atomic.write_text(path, new)
    except OSError:
        return []
    return added


def _bare(line: str) -> str:
    return line.strip().strip("/")
