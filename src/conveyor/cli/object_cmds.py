"""Plumbing for debugging: see exactly what the object store holds."""

from __future__ import annotations

import sys
from argparse import Namespace

from conveyor.cli.app import arg, command, group
from conveyor.cli.output import echo

group("object", help="inspect objects in the cache (plumbing)", hidden=True)


@command("object cat", arg("oid"), help="write an object's bytes to stdout")
def object_cat(opts: Namespace) -> None:
    """Write an object's bytes to stdout (a unique prefix of 4+ hex digits works)."""
    from conveyor.data.tree import split_ref
    from conveyor.data.workspace import Workspace

    with Workspace.find() as ws:
        data = ws.odb.read_bytes(_full_oid(ws, split_ref(opts.oid)[0]))
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@command("object ls-tree", arg("oid"), help="list a tree object's entries")
def object_ls_tree(opts: Namespace) -> None:
    """List a tree object's entries: mode, oid, size, path."""
    from conveyor.data.tree import Tree, split_ref
    from conveyor.data.workspace import Workspace

    with Workspace.find() as ws:
        full = _full_oid(ws, split_ref(opts.oid)[0])
        tree = Tree.from_bytes(ws.odb.read_bytes(full), oid=full)
    for e in tree.entries:
        echo(f"{'755' if e.executable else '644'} {e.oid} {e.size:>12} {e.path}")


@command("object hash", arg("path"), help="print a file's oid without storing it")
def object_hash(opts: Namespace) -> None:
    """Print a file's BLAKE3 oid without storing it."""
    import os

    from conveyor.data.hashing import hash_file
    from conveyor.foundation.errors import PathError

    if not os.path.isfile(opts.path):
        raise PathError(f"{opts.path} is not a file")
    echo(hash_file(opts.path))


def _full_oid(ws: object, prefix: str) -> str:
    """Expand a unique prefix (at least 4 hex digits) to a full oid."""
    from conveyor.data.hashing import is_oid
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.errors import DataError

    assert isinstance(ws, Workspace)
    prefix = prefix.lower()
    if is_oid(prefix):
        return prefix
    if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
        raise DataError(f"{prefix!r} is not an oid or a prefix of at least 4 hex digits")
    matches = ws.odb.starting_with(prefix)
    if len(matches) != 1:
        found = "no object" if not matches else f"{len(matches)} objects"
        raise DataError(f"{found} in the cache start with {prefix}")
    return matches[0]
