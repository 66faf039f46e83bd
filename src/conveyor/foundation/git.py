"""The few git queries conveyor needs, through the git command (no library)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from conveyor.foundation.errors import GitError


def run(root: Path, *args: str, input: bytes | None = None) -> bytes:
    if shutil.which("git") is None:
        raise GitError("git is not installed", hint="install git, or work without --rev")
    proc = subprocess.run(
        ["git", "-C", str(root), *args], input=input, capture_output=True, check=False
    )
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {' '.join(args[:2])} failed: {message[-1] if message else ''}")
    return proc.stdout


def toplevel(root: Path) -> Path:
    try:
        return Path(run(root, "rev-parse", "--show-toplevel").decode().strip())
    except GitError:
        raise GitError(
            f"{root} is not in a git repository", hint="run `git init` and commit your pointers"
        ) from None


def resolve(root: Path, rev: str) -> str:
    try:
        return run(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
    except GitError:
        raise GitError(f"unknown git revision {rev!r}", hint="see `git log --oneline`") from None


def files_at(root: Path, commit: str, suffix: str) -> list[str]:
    """Paths (relative to the git top level) of files ending in ``suffix`` at ``commit``."""
    out = run(root, "ls-tree", "-r", "-z", "--full-tree", commit)
    paths = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        if meta.split(b" ")[1] == b"blob" and path.endswith(suffix.encode()):
            paths.append(path.decode())
    return paths


def blobs_at(root: Path, commit: str, suffix: str) -> dict[str, str]:
    """path -> blob id for files ending in ``suffix`` at ``commit``."""
    out = run(root, "ls-tree", "-r", "-z", "--full-tree", commit)
    found = {}
    for record in out.split(b"\0"):
        meta, _, path = record.partition(b"\t")
        parts = meta.split(b" ")
        if len(parts) == 3 and parts[1] == b"blob" and path.endswith(suffix.encode()):
            found[path.decode()] = parts[2].decode()
    return found


def read_blobs(root: Path, blob_ids: Iterable[str]) -> dict[str, bytes]:
    """Contents of many blobs with one ``git cat-file --batch``."""
    ids = list(dict.fromkeys(blob_ids))
    if not ids:
        return {}
    out = run(root, "cat-file", "--batch", input=("\n".join(ids) + "\n").encode())
    result: dict[str, bytes] = {}
    pos = 0
    for blob in ids:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        if len(header) < 3:
            raise GitError(f"git cannot read blob {blob}")
        size = int(header[2])
        result[blob] = out[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
    return result


def all_commits(root: Path) -> list[str]:
    out = run(root, "rev-list", "--all")
    return out.decode().split()
