"""Data versioning commands: add, status, checkout."""

from __future__ import annotations

import json
from argparse import Namespace
from typing import TYPE_CHECKING

from conveyor.cli.app import arg, command
from conveyor.cli.output import bar, echo, human_size, style

if TYPE_CHECKING:
    from conveyor.data.pointer import Pointer
    from conveyor.data.workspace import Workspace
    from conveyor.pipeline.lock import Entry


@command("add", arg("paths", nargs="+", metavar="PATH"), help="track files or folders")
def add_cmd(opts: Namespace) -> None:
    """Track files or folders: store them in the cache and write PATH.cvy pointers."""
    from conveyor.data.add import add
    from conveyor.data.workspace import writing

    with writing("conveyor add") as ws:
        pointers = add(ws, opts.paths, progress=bar())
        for ptr in pointers:
            what = f"{ptr.nfiles} files, " if ptr.is_tree else ""
            echo(f"added {ws.display(ptr.data_path)} ({what}{human_size(ptr.size)})")
        ignores = dict.fromkeys(ws.display(p.file.parent / ".gitignore") for p in pointers)
        files = " ".join([*(ws.display(p.file) for p in pointers), *ignores])
        echo(f"To track the changes with git, run:\n\n    git add {files}")


@command(
    "status",
    arg("paths", nargs="*", metavar="PATH"),
    arg("--json", dest="as_json", action="store_true", help="print JSON for machines"),
    help="show what differs: tracked data and stale pipeline stages",
)
def status_cmd(opts: Namespace) -> None:
    """Show how tracked data differs from its pointers, and which stages are stale and why."""
    from conveyor.data.status import status
    from conveyor.data.workspace import Workspace
    from conveyor.pipeline.planner import stale_stages

    with Workspace.find() as ws:
        results = status(ws, opts.paths, progress=bar())
        stages = {} if opts.paths else stale_stages(ws)
    if opts.as_json:
        rows = [
            {"stage": n, "action": d.action, "reasons": list(d.reasons)} for n, d in stages.items()
        ]
        print(json.dumps({"data": [r.to_dict() for r in results], "stages": rows}, indent=2))
        return
    if not results and not opts.paths:
        echo("No tracked data. Track some with `conveyor add PATH`.")
    for r in results:
        colour = {"clean": "green", "modified": "yellow", "missing": "red"}[r.state]
        line = style(f"{r.state:<9}", colour) + f" {r.path}"
        if r.not_in_cache:
            line += style(f"  ({r.not_in_cache} object(s) not in cache)", "red")
        print(line)
        for label, files in (
            ("modified", r.changes.modified),
            ("added", r.changes.added),
            ("deleted", r.changes.deleted),
        ):
            for name in files[:10]:
                print(f"    {label}: {r.path}/{name}" if name != r.path else f"    {label}")
            if len(files) > 10:
                print(f"    ... and {len(files) - 10} more {label}")
    if any(r.state == "missing" and not r.not_in_cache for r in results):
        echo("Run `conveyor checkout` to restore missing data.")
    if any(r.not_in_cache for r in results):
        echo("Run `conveyor pull` to fetch objects the cache lacks.")
    for name, d in stages.items():
        label = {"run": "stale", "checkout": "outs missing", "skip": "frozen"}[d.action]
        print(style(f"{label:<9}", "yellow") + f" stage {name}")
        for why in d.reasons:
            print(f"    {why}")
    if any(d.action != "skip" for d in stages.values()):
        echo("Run `conveyor run` to bring the pipeline up to date.")
    elif not opts.paths:
        echo("No stale stages.")


@command(
    "checkout",
    arg("paths", nargs="*", metavar="PATH", help="tracked paths, pipeline outs or stage names"),
    arg("--rev", help="check out the data as of this git revision"),
    arg("--link", help="link types to try, in order (overrides cache.type)"),
    arg("--force", action="store_true", help="discard workspace changes not saved in the cache"),
    arg("--verify", action="store_true", help="re-hash every object checked out"),
    help="make tracked paths and pipeline outs match their pointers and conveyor.lock",
)
def checkout_cmd(opts: Namespace) -> None:
    """Make tracked paths match their pointers, and the pipeline's cached outs match
    conveyor.lock (only differing files are touched)."""
    from conveyor.data.checkout import checkout
    from conveyor.data.revision import pointers_at
    from conveyor.data.workspace import writing

    with writing("conveyor checkout") as ws:
        rev = opts.rev
        outs, rest, stages = _lock_outs(ws, opts.paths, rev)
        if opts.paths and not rest:
            pointers = []
        else:
            pointers = pointers_at(ws, rev, rest) if rev else ws.pointers(rest)
        link_types = [t.strip() for t in opts.link.split(",")] if opts.link else None
        results = checkout(
            ws,
            [*pointers, *outs],
            link_types=link_types,
            force=opts.force,
            verify=opts.verify,
            progress=bar(),
        )
        if rev:
            for ptr in pointers:
                ptr.write()
            if stages:  # the lock, like the pointers, now says what the workspace holds
                from conveyor.pipeline import lock as lock_mod

                lock_mod.save(ws.root, {**lock_mod.load(ws.root), **stages})
    for r in results:
        if r.changed:
            how = ",".join(sorted(r.links))
            echo(
                f"{r.path}: {r.added} added, {r.modified} modified, {r.deleted} deleted"
                + (f" ({how})" if how else "")
            )
        else:
            echo(f"{r.path}: up to date")


def _lock_outs(
    ws: Workspace, targets: list[str], rev: str | None
) -> tuple[list[Pointer], list[str], dict[str, Entry]]:
    """The cached pipeline outs conveyor.lock records (at ``rev``), as the data layer's pointers
    (named by the lock in its messages), the targets that name none of them, and the lock
    entries of the stages whose outs these are.

    A target is an out's path or a stage's name (``train`` or ``train@lr-0.1``)."""
    from conveyor.data.pointer import Pointer
    from conveyor.foundation.paths import inside
    from conveyor.pipeline import definition
    from conveyor.pipeline import lock as lock_mod

    if not (ws.root / definition.FILE).exists() or not (ws.root / lock_mod.FILE).exists():
        return [], targets, {}  # no pipeline has run: conveyor.yaml is not even read
    source = lock_mod.FILE if rev is None else f"{lock_mod.FILE} at {rev}"
    entries = lock_mod.load(ws.root) if rev is None else _lock_at(ws, rev, source)
    cached = {
        o.path for stage in definition.load(ws.root).stages.values() for o in stage.outs if o.cache
    }
    by_stage: dict[str, list[str]] = {}
    found: dict[str, Pointer] = {}
    for name, entry in entries.items():
        for rel, meta in entry.outs.items():
            if rel not in cached:
                continue  # committed to git (cache: false), or no longer declared
            found[rel] = Pointer(
                ws.root / lock_mod.FILE, rel, meta.oid, meta.is_tree, meta.size, meta.nfiles
            )
            by_stage.setdefault(name, []).append(rel)
    if not targets:
        return [found[rel] for rel in sorted(found)], [], {n: entries[n] for n in by_stage}
    chosen: dict[str, Pointer] = {}
    rest: list[str] = []
    stages: dict[str, Entry] = {}
    for target in targets:
        names = [n for n in by_stage if n == target or n.partition("@")[0] == target]
        rel = "" if names else ws.display(inside(ws.root, target))
        owner = [n for n, rels in by_stage.items() if rel in rels]
        if names:
            chosen.update((r, found[r]) for n in names for r in by_stage[n])
        elif owner:
            chosen[rel] = found[rel]
            names = owner
        else:
            rest.append(target)
        stages.update((n, entries[n]) for n in names)
    return [chosen[rel] for rel in sorted(chosen)], rest, stages


def _lock_at(ws: Workspace, rev: str, source: str) -> dict[str, Entry]:
    import os

    from conveyor.foundation import git
    from conveyor.foundation.errors import GitError
    from conveyor.pipeline import lock as lock_mod

    prefix = os.path.relpath(ws.root, git.toplevel(ws.root))
    path = lock_mod.FILE if prefix == "." else f"{prefix}/{lock_mod.FILE}"
    commit = git.resolve(ws.root, rev)
    try:
        text = git.run(ws.root, "show", f"{commit}:{path}").decode()
    except GitError:
        return {}  # no pipeline had run at that revision
    return lock_mod.parse(text, source)
