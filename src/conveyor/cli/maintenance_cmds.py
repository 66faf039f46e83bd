"""Keeping the cache healthy: gc (remove what nothing references) and fsck (find corruption)."""

from __future__ import annotations

import json
from argparse import Namespace
from typing import TYPE_CHECKING

from conveyor.cli.app import UsageError, arg, command
from conveyor.cli.output import bar, echo, human_size

if TYPE_CHECKING:
    from collections.abc import Sequence

    from conveyor.data.fsck import Report
    from conveyor.data.objects import ObjectDB
    from conveyor.data.remote import Remote


@command(
    "gc",
    arg("-a", "--all-commits", action="store_true", help="also keep what any commit names"),
    arg("--remote", dest="on_remote", action="store_true", help="also clean the remote"),
    arg("-r", "--remote-name", metavar="NAME", help="the remote for --remote"),
    arg("--dry", action="store_true", help="show what would be removed; remove nothing"),
    arg("-v", "--verbose", action="store_true", help="list every object removed"),
    help="remove cached objects nothing references",
)
def gc_cmd(opts: Namespace) -> None:
    """Remove cached objects no pointer, conveyor.lock or run's artifact names."""
    from conveyor.data import gc
    from conveyor.data.remotes import open_remote
    from conveyor.data.workspace import writing
    from conveyor.pipeline.tracked import lock_refs
    from conveyor.tracking.db import exists, opened

    all_commits, on_remote, remote_name = opts.all_commits, opts.on_remote, opts.remote_name
    dry, verbose = opts.dry, opts.verbose
    if remote_name and not on_remote:
        raise UsageError("-r NAME chooses the remote for --remote; add --remote")
    with writing("conveyor gc") as ws:
        remote = open_remote(ws, remote_name) if on_remote else None
        extra = lock_refs(ws, all_commits=all_commits)
        if exists(ws.root):  # no store yet: no artifacts or models (and gc creates none)
            from conveyor.registry.versions import Registry

            with opened(ws.root) as store:
                kept = [store.artifact_refs(), Registry(store).package_refs()]
            for refs in kept:
                for ref, names in refs.items():
                    extra.setdefault(ref, set()).update(names)
        keep = gc.referenced(ws, all_commits=all_commits, remote=remote, extra=extra)
        garbage = gc.find_garbage(ws.odb, keep)
        _remove(ws.odb, garbage.oids, dry, verbose)
        _summary("the cache", len(garbage), garbage.size, garbage.kept, dry)
        if remote is not None:
            present = list(remote.iter_oids())
            oids = gc.unreferenced(present, keep)
            _remove(remote, oids, dry, verbose)
            _summary(f"remote {remote.name}", len(oids), None, len(present) - len(oids), dry)


def _remove(store: ObjectDB | Remote, oids: Sequence[str], dry: bool, verbose: bool) -> None:
    from conveyor.data import gc

    if verbose:
        for oid in oids:
            echo(oid)
    if not dry:
        gc.remove(store, oids, progress=bar())


def _summary(where: str, count: int, size: int | None, kept: int, dry: bool) -> None:
    amount = f"{count} object(s)" + (f" ({human_size(size)})" if size is not None else "")
    if not count:
        echo(f"{where}: nothing to remove; all {kept} object(s) are referenced")
    elif dry:
        echo(f"{where}: would remove {amount}; {kept} kept (--dry: nothing was removed)")
    else:
        echo(f"{where}: removed {amount}; {kept} kept")


@command(
    "fsck",
    arg("--json", dest="as_json", action="store_true", help="print JSON for machines"),
    help="re-hash every cached object and report corruption",
)
def fsck_cmd(opts: Namespace) -> None:
    """Re-hash every cached object; quarantine corrupt ones and report who uses them."""
    from conveyor.data.fsck import fsck
    from conveyor.data.workspace import writing
    from conveyor.foundation.errors import DataError

    with writing("conveyor fsck") as ws:
        report = fsck(ws, progress=bar())
    if opts.as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    if not report.ok:
        found = [
            f"{len(items)} {what}"
            for items, what in (
                (report.corrupt, "corrupt object(s)"),
                (report.invalid_trees, "invalid tree(s)"),
                (report.bad_pointers, "unreadable pointer(s)"),
            )
            if items
        ]
        if report.corrupt:
            hint = "`conveyor pull` fetches good copies; then `conveyor checkout` repairs the paths"
        else:
            hint = "restore the pointers above from git, or re-create them with `conveyor add`"
        raise DataError("fsck found " + ", ".join(found), hint=hint)


def _print_report(report: Report) -> None:
    echo(f"checked {report.checked} object(s) ({human_size(report.size)})")
    for c in report.corrupt:
        echo(f"corrupt: {c.oid}: {c.reason}", fg="red")
        for where in c.used_by:
            echo(f"    used by {where}")
        if c.quarantined:
            echo(f"    moved to {c.quarantined}")
    for t in report.invalid_trees:
        echo(f"invalid tree: {t.reason}", fg="red")
        for where in t.used_by:
            echo(f"    named by {where}")
    for p in report.bad_pointers:
        echo(f"bad pointer: {p.error}", fg="red")
    for m in report.missing:
        echo(f"missing: {m.path} ({m.pointer}): {len(m.oids)} object(s) not in the cache")
    if report.corrupt:
        echo(
            f"{len(report.corrupt)} corrupt object(s) quarantined. Run `conveyor pull` to fetch "
            "good copies, then `conveyor checkout` to repair the paths above."
        )
    elif report.missing:
        echo("Run `conveyor pull` to fetch the objects the cache lacks.")
    if report.ok:
        echo("no corruption found", fg="green")
