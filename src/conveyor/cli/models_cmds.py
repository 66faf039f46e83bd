"""The model registry: register, list, show, alias, lineage."""

from __future__ import annotations

import json
import time
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from conveyor.cli.app import UsageError, arg, command, group
from conveyor.cli.output import echo, style, table

if TYPE_CHECKING:
    from conveyor.registry.versions import Registry

group("models", help="the model registry: versions, aliases, lineage")


@contextmanager
def registry() -> Iterator[Registry]:
    from conveyor.foundation.paths import find_root
    from conveyor.registry.versions import Registry
    from conveyor.tracking.db import opened

    with opened(find_root()) as store:
        yield Registry(store)


@command(
    "models register",
    arg("name", metavar="NAME"),
    arg("path", metavar="PATH", help="a model package folder (conveyor.models.save)"),
    arg("--run", metavar="RUN", help="the run that made it: its lineage is recorded"),
    help="register a model package as a new version",
)
def register_cmd(opts: Namespace) -> None:
    from conveyor.data.workspace import writing
    from conveyor.registry import stored

    with writing("conveyor models register") as ws:
        version, lineage = stored.register(ws, opts.name, opts.path, run=opts.run)
    run = f", from run {lineage['run']}" if "run" in lineage else ""
    echo(f"registered {opts.name} version {version} ({lineage['package']['hash'][:16]}{run})")
    echo(f"Load it with conveyor.models.load('models:/{opts.name}/{version}').")


@command("models list", help="registered models with their latest version and aliases")
def list_cmd(opts: Namespace) -> None:
    with registry() as reg:
        models = reg.models()
    if not models:
        echo("No models yet: `conveyor models register NAME PATH`.")
        return
    rows = [
        [
            m.name,
            str(m.latest),
            str(m.versions),
            ", ".join(f"{a}={v}" for a, v in m.aliases.items()) or "-",
        ]
        for m in models
    ]
    table(["model", "latest", "versions", "aliases"], rows)


@command(
    "models show",
    arg("model", metavar="NAME[@ALIAS|/VERSION]"),
    arg("--json", dest="as_json", action="store_true", help="JSON for machines"),
    help="one version (the latest, an alias's or a number's), and the alias history",
)
def show_cmd(opts: Namespace) -> None:
    from conveyor.registry.versions import parse_uri

    uri = parse_uri(opts.model)
    with registry() as reg:
        version = reg.resolve(uri)
        aliases = [a for a, v in reg.models_aliases(uri.name).items() if v == version.version]
        history = reg.history(uri.name)
        tags = {**reg.tags(uri.name), **reg.tags(uri.name, version.version)}
    if opts.as_json:
        extra = {"aliases": aliases, "history": [h.as_dict() for h in history], "tags": tags}
        print(json.dumps({**version.as_dict(), **extra}, indent=2, default=str))
        return
    echo(style(f"{version.name} version {version.version}", bold=True))
    lineage = version.lineage
    for label, value in (
        ("flavor", version.flavor),
        ("package", lineage.get("package", {}).get("hash", version.package)),
        ("aliases", ", ".join(aliases) or "-"),
        ("tags", ", ".join(f"{k}={v}" for k, v in tags.items()) or "-"),
        ("run", version.run_id or "-"),
        ("commit", (lineage.get("git_commit") or "-")[:12]),
        ("registered", _when(version.created) + f" by {version.user or '?'}"),
    ):
        print(f"  {label:<10} {value}")
    if lineage.get("metrics"):
        table(["metric", "value"], [[k, f"{v:.6g}"] for k, v in sorted(lineage["metrics"].items())])
    if history:
        echo(style("alias history", bold=True))
        rows = [
            [_when(h.at), h.alias, _v(h.previous), _v(h.version), h.user or "?"] for h in history
        ]
        table(["when", "alias", "from", "to", "by"], rows)


@command(
    "models alias",
    arg("target", metavar="NAME@ALIAS"),
    arg("version", nargs="?", type=int, metavar="VERSION"),
    arg("--delete", action="store_true", help="remove the alias"),
    help="point an alias (production, staging, ...) at a version, or delete it",
)
def alias_cmd(opts: Namespace) -> None:
    from conveyor.registry.versions import parse_uri
    from conveyor.tracking.api import user_name

    uri = parse_uri(opts.target)
    if uri.alias is None:
        raise UsageError("name the alias as NAME@ALIAS, e.g. classifier@production")
    if opts.delete == (opts.version is not None):
        raise UsageError("give a VERSION to point the alias at, or --delete")
    with registry() as reg:
        previous = reg.set_alias(uri.name, uri.alias, opts.version, user_name())
    if opts.delete:
        echo(f"deleted {uri.name}@{uri.alias} (was version {previous})")
    else:
        was = f" (was version {previous})" if previous is not None else ""
        echo(f"{uri.name}@{uri.alias} -> version {opts.version}{was}")


@command(
    "models lineage",
    arg("model", metavar="NAME[@ALIAS|/VERSION]"),
    help="version -> run -> commit -> stage hashes -> data, for tracing a prediction back",
)
def lineage_cmd(opts: Namespace) -> None:
    from conveyor.registry.versions import parse_uri

    with registry() as reg:
        version = reg.resolve(parse_uri(opts.model))
    lineage = version.lineage
    package = lineage.get("package", {})
    print(f"{version.name} version {version.version}")
    print(f"└─ package {package.get('path', '?')} ({package.get('hash', version.package)[:16]})")
    if not lineage.get("run"):
        print("   └─ no run recorded: register with --run RUN to keep the lineage")
        return
    print(f"   └─ run {lineage['run']}")
    commit = (lineage.get("git_commit") or "no commit")[:12]
    print(f"      └─ commit {commit} on {lineage.get('git_branch') or '?'}")
    for label in ("deps", "outs"):
        items = sorted(lineage.get(label, {}).items())
        if items:
            print(f"         └─ {label}")
            for path, ref in items:
                print(f"            {path}  {ref[:16]}")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _v(version: int | None) -> str:
    return "-" if version is None else str(version)


@command(
    "models diff",
    arg("a", metavar="A", help="NAME@ALIAS, NAME/VERSION or NAME"),
    arg("b", metavar="B"),
    arg("--json", dest="as_json", action="store_true", help="JSON for machines"),
    help="two versions' metrics, params and lineage side by side",
)
def diff_cmd(opts: Namespace) -> None:
    """Metrics and params (from each version's run) and lineage, with the change from A to B."""
    from conveyor.cli.render import delta_cells
    from conveyor.registry.versions import parse_uri
    from conveyor.tracking.compare import compare

    with registry() as reg:
        versions = [reg.resolve(parse_uri(ref)) for ref in (opts.a, opts.b)]
    sides = [
        {"params": v.lineage.get("params", {}), "metrics": v.lineage.get("metrics", {})}
        for v in versions
    ]
    rows = compare(sides)
    facts = [
        ("package", [v.package[:16] for v in versions]),
        ("run", [v.run_id or "-" for v in versions]),
        ("commit", [(v.lineage.get("git_commit") or "-")[:12] for v in versions]),
        ("flavor", [v.flavor for v in versions]),
    ]
    if opts.as_json:
        print(json.dumps({"lineage": dict(facts), "rows": rows}, indent=2, default=str))
        return
    labels = [f"{v.name}/{v.version}" for v in versions]
    table_rows = [[name, *values, "", ""] for name, values in facts]
    table_rows += [delta_cells(r) for r in rows]
    table(["", *labels, "change", "relative"], table_rows)


@command(
    "models tag",
    arg("model", metavar="NAME[/VERSION]", help="the model, or one of its versions"),
    arg("tags", nargs="+", metavar="KEY=VALUE", help="KEY= (empty) removes a tag"),
    help="tag a model or a version",
)
def tag_cmd(opts: Namespace) -> None:
    from conveyor.registry.versions import parse_uri

    uri = parse_uri(opts.model)
    if uri.alias is not None:
        raise UsageError("tag NAME or NAME/VERSION (an alias moves; tag the version it names)")
    tags = {}
    for item in opts.tags:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{item}: expected KEY=VALUE")
        tags[key.strip()] = value
    with registry() as reg:
        reg.set_tags(uri.name, uri.version, tags)
    where = uri.name if uri.version is None else f"{uri.name} version {uri.version}"
    echo(
        f"tagged {where}: "
        + ", ".join(f"{k}={v}" if v else f"{k} removed" for k, v in tags.items())
    )
