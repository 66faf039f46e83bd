"""The few git queries conveyor needs, through the git command (no library)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from conveyor.foundation.errors import GitError


def run(root: Path, *args: str, input: bytes | None = None, timeout: float | None = None) -> bytes:
    if shutil.which("git") is None:
        raise GitError("git is not installed", hint="install git, or work without --rev")
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            input=input,
            capture_output=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {' '.join(args[:2])} gave no answer within {timeout} s") from None
    except OSError as exc:
        raise GitError(f"git {' '.join(args[:2])} could not start: {exc}") from None
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


@dataclass(frozen=True)
class WorkState:
    """Where the work tree is: its commit (None before the first), branch (None when detached),
    and whether tracked files differ from that commit."""

    commit: str | None
    branch: str | None
    dirty: bool


def parse_status(text: str) -> WorkState:
    """A :class:`WorkState` from ``git status --porcelain=2 --branch`` output.

    >>> parse_status("# branch.oid abc\n# branch.head main\n1 .M N... x\n")
    WorkState(commit='abc', branch='main', dirty=True)
    """
    commit = branch = None
    dirty = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split()[2]
            commit = None if commit == "(initial)" else commit
        elif line.startswith("# branch.head "):
            branch = line.split(maxsplit=2)[2]
            branch = None if branch == "(detached)" else branch
        elif not line.startswith("#"):
            dirty = True
    return WorkState(commit, branch, dirty)


def work_state(root: Path, *, timeout: float | None = None) -> WorkState:
    """The :class:`WorkState` of the repository ``root`` is in (untracked files do not count);
    a :class:`GitError` outside a repository or without git."""
    out = run(root, "status", "--porcelain=2", "--branch", "--untracked-files=no", timeout=timeout)
    return parse_status(out.decode(errors="replace"))


def diff_head(root: Path, *, timeout: float | None = None) -> bytes:
    """The uncommitted changes to tracked files, as ``git diff HEAD`` prints them."""
    return run(root, "diff", "HEAD", timeout=timeout)
