"""A project's workspace: its root, config, object cache, state memo and pointers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from conveyor.data import pointer as pointer_mod
from conveyor.data.objects import ObjectDB
from conveyor.data.pointer import Pointer
from conveyor.data.state import StateMemo
from conveyor.foundation.config import Config
from conveyor.foundation.errors import PathError
from conveyor.foundation.lock import ProjectLock
from conveyor.foundation.paths import ProjectPaths, check_control, find_root, inside


class Workspace:
    """Open with :meth:`find`; close (or use as a context manager) to release the memo."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.paths = ProjectPaths(self.root)
        check_control(self.root)  # a .conveyor/tmp a repository links elsewhere, say

    @classmethod
    def find(cls, start: Path | None = None) -> Workspace:
        return cls(find_root(start))

    @cached_property
    def config(self) -> Config:
        return Config(self.paths.control)

    @cached_property
    def odb(self) -> ObjectDB:
        odb = ObjectDB(self.paths.objects, self.paths.tmp, sync=self.config.get("core.fsync"))
        odb.recover()
        return odb

    @cached_property
    def memo(self) -> StateMemo:
        return StateMemo(self.paths.state_db)

    @property
    def jobs(self) -> int:
        configured = self.config.get("core.jobs")
        return int(configured) if configured else max(4, (os.cpu_count() or 1) * 2)

    def lock(self, command: str) -> ProjectLock:
        timeout = float(os.environ.get("CONVEYOR_LOCK_TIMEOUT", "60"))
        return ProjectLock(self.paths.lock, timeout=timeout, command=command)

    def display(self, path: Path) -> str:
        """A path as the user should read it: relative to the root."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def pointers(self, targets: list[str] | None = None) -> list[Pointer]:
        """The workspace's pointers, or those the user named (data paths or .cvy files)."""
        if not targets:
            files = sorted(pointer_mod.discover(self.root))
        else:
            files = [self._pointer_file(t) for t in targets]
        return [pointer_mod.load(f, self.root) for f in files]

    def _pointer_file(self, target: str) -> Path:
        path = inside(self.root, target)
        if path.name.endswith(pointer_mod.SUFFIX):
            return path
        candidate = pointer_mod.pointer_file_for(path)
        if candidate.exists():
            return candidate
        raise PathError(
            f"{self.display(path)} is not tracked (no {self.display(candidate)})",
            hint=f"run `conveyor add {target}` to track it",
        )

    def close(self) -> None:
        if "memo" in self.__dict__:
            self.memo.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def writing(command: str, start: Path | None = None) -> Iterator[Workspace]:
    """Open the workspace (of ``start``, default the working directory), hold the project lock
    and clear temp files of dead writers: how every command that writes to the cache or the
    workspace starts."""
    with Workspace.find(start) as ws, ws.lock(command):
        ws.odb.clean_tmp()
        try:
            yield ws
        finally:
            ws.odb.release_tmp()
