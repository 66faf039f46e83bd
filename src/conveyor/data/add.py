"""``conveyor add``: store files and folders in the cache and write their pointers."""

from __future__ import annotations

from pathlib import Path

from conveyor.data import build
from conveyor.data import pointer as pointer_mod
from conveyor.data.pointer import Pointer
from conveyor.data.tree import check_entries
from conveyor.data.workspace import Workspace
from conveyor.foundation import atomic
from conveyor.foundation.errors import PathError
from conveyor.foundation.paths import check_path, inside
from conveyor.foundation.progress import Progress


def add(ws: Workspace, targets: list[str], *, progress: Progress | None = None) -> list[Pointer]:
    """Track ``targets``; returns the pointers written, in the order given."""
    paths = [_check_target(ws, t) for t in targets]
    built = []
    with ws.odb.batch() as batch:
        for path in paths:
            result = build.scan(
                ws.root, path, ws.memo, store=batch, jobs=ws.jobs, progress=progress
            )
            if result.tree is not None:  # a nested repository's .git, a pointer: never tracked
                check_entries(result.tree.entries, f"add {ws.display(path)}")
            built.append(result)
    # Objects are durable now; only then may a pointer name them.
    generation = ws.odb.generation()
    for result in built:
        if result.is_tree:
            ws.memo.mark_complete(result.oid, generation)
    pointers = []
    for path, result in zip(paths, built, strict=True):
        ptr = Pointer(
            pointer_mod.pointer_file_for(path),
            path.name,
            result.oid,
            result.is_tree,
            result.size,
            result.nfiles,
        )
        ptr.write()
        ignore(path)
        pointers.append(ptr)
    return pointers


def _check_target(ws: Workspace, target: str) -> Path:
    path = inside(ws.root, target)
    if path.name.endswith(pointer_mod.SUFFIX):
        raise PathError(f"{target} is a pointer file; add the data it names instead")
    check_path(
        ws.display(path), where="add", hint="track data files and folders, not the project's own"
    )
    if not path.exists():
        raise PathError(f"{target} does not exist", hint="check the path, relative to here")
    for parent in path.parents:
        if parent == ws.root:
            break
        if pointer_mod.pointer_file_for(parent).exists():
            raise PathError(
                f"{target} is inside the tracked folder {ws.display(parent)}",
                hint=f"run `conveyor add {ws.display(parent)}` to record the folder's new state",
            )
    return path


def ignore(path: Path) -> None:
    """Add ``/NAME`` to the ``.gitignore`` beside ``path`` so git leaves the data alone."""
    gitignore = path.parent / ".gitignore"
    line = f"/{path.name}"
    text = gitignore.read_text() if gitignore.exists() else ""
    if line in text.splitlines():
        return
    if text and not text.endswith("\n"):
        text += "\n"
    atomic.write_text(gitignore, text + line + "\n")
