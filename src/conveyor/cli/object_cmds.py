"""Plumbing for debugging: see exactly what the object store holds."""

from __future__ import annotations

import sys

import click

from conveyor.cli.output import echo


@click.group("object", hidden=True)
def object_group() -> None:
    """Inspect objects in the cache (plumbing)."""


@object_group.command("cat")
@click.argument("oid")
def object_cat(oid: str) -> None:
    """Write an object's bytes to stdout."""
    from conveyor.data.tree import split_ref
    from conveyor.data.workspace import Workspace

    with Workspace.find() as ws:
        data = ws.odb.read_bytes(_full_oid(ws, split_ref(oid)[0]))
    sys.stdout.buffer.write(data)


@object_group.command("ls-tree")
@click.argument("oid")
def object_ls_tree(oid: str) -> None:
    """List a tree object's entries: mode, oid, size, path."""
    from conveyor.data.tree import Tree, split_ref
    from conveyor.data.workspace import Workspace

    with Workspace.find() as ws:
        full = _full_oid(ws, split_ref(oid)[0])
        tree = Tree.from_bytes(ws.odb.read_bytes(full), oid=full)
    for e in tree.entries:
        echo(f"{'755' if e.executable else '644'} {e.oid} {e.size:>12} {e.path}")


@object_group.command("hash")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def object_hash(path: str) -> None:
    """Print a file's BLAKE3 oid without storing it."""
    from conveyor.data.hashing import hash_file

    echo(hash_file(path))


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
    shard = ws.paths.objects / prefix[:2]
    matches = sorted(p.name for p in shard.glob(prefix[2:] + "*")) if shard.is_dir() else []
    if len(matches) != 1:
        found = "no object" if not matches else f"{len(matches)} objects"
        raise DataError(f"{found} in the cache start with {prefix}")
    return prefix[:2] + matches[0]


COMMANDS = [object_group]
