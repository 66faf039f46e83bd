"""``conveyor.yaml`` -> a :class:`Pipeline`: stages expanded, resolved, validated and ordered.

Compiling (YAML, templating, pydantic, the graph) costs a few hundred milliseconds, so its result
is kept in ``.conveyor/cache/pipeline.json`` under a hash of every file it read (conveyor.yaml,
params files, vars files) and the ``-S`` overrides. When none of them changed, loading is one
JSON read: no-op runs and ``status`` never import YAML or pydantic for the definition.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from conveyor.data import hashing
from conveyor.foundation import atomic, project
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.paths import CONTROL_DIR
from conveyor.pipeline import dag, resources, sections
from conveyor.pipeline import params as params_mod
from conveyor.pipeline.outs import check_out
from conveyor.pipeline.stage import KINDS, Out, Plot, Stage

if TYPE_CHECKING:
    from conveyor.foundation.yamlio import Located
    from conveyor.pipeline.template import Context, Expansion

FILE = project.FILE
_FORMAT = 3  # 3: stages have resources
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class Pipeline(NamedTuple):
    stages: dict[str, Stage]  # in definition order
    upstream: dict[str, tuple[str, ...]]
    order: list[str]  # upstream before downstream
    values: dict[tuple[str, str], Any]  # the value of every (params file, key) a stage uses
    sources: tuple[str, ...]  # the files compiled from, relative to the root
    metrics: tuple[str, ...] = ()  # metrics files: top-level ones and those inside stage outs
    plots: tuple[Plot, ...] = ()  # every plot: top-level ones, then each stage's plots files

    def value_of(self, file: str, key: str) -> Any:
        return self.values.get((file, key), params_mod.MISSING)


Overrides = list[tuple[str, str, Any]]  # (params file, key, value) from -S


def load(root: Path, overrides: Overrides | None = None) -> Pipeline:
    """The pipeline of the project at ``root`` (empty when there is no conveyor.yaml)."""
    overrides = overrides or []
    cache = root / CONTROL_DIR / "cache" / "pipeline.json"
    tag = json.dumps(overrides, sort_keys=True, default=str)
    try:
        saved = json.loads(cache.read_bytes())
        if saved.get("format") == _FORMAT and saved["key"] == _key(root, saved["sources"], tag):
            return _from_json(saved)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no cache, or a corrupt one (a list, a row missing): compile
    pipeline = compile_pipeline(root, overrides)
    try:
        data = _to_json(pipeline, _key(root, list(pipeline.sources), tag))
        atomic.write_bytes(cache, json.dumps(data).encode(), durable=False, parents=True)
    except (OSError, TypeError, ValueError):
        pass  # param values JSON cannot hold (YAML dates): compile every time
    return pipeline


def _key(root: Path, sources: list[str], tag: str) -> str:
    parts = [tag.encode()]
    for rel in sources:
        try:
            parts.append((root / rel).read_bytes())
        except FileNotFoundError:
            parts.append(b"\0missing")
        parts.append(b"\0" + rel.encode())
    return hashing.hash_bytes(b"\0\0".join(parts))


def _to_json(p: Pipeline, key: str) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "key": key,
        "sources": list(p.sources),
        "stages": [s.to_json() for s in p.stages.values()],
        "upstream": p.upstream,
        "order": p.order,
        "values": [[f, k, v] for (f, k), v in p.values.items()],
        "metrics": list(p.metrics),
        "plots": [plot.to_json() for plot in p.plots],
    }


def _from_json(data: dict[str, Any]) -> Pipeline:
    stages = {row[0]: Stage.from_json(row) for row in data["stages"]}
    return Pipeline(
        stages,
        {k: tuple(v) for k, v in data["upstream"].items()},
        data["order"],
        {(f, k): v for f, k, v in data["values"]},
        tuple(data["sources"]),
        tuple(data["metrics"]),
        tuple(Plot.from_json(row) for row in data["plots"]),
    )


class _Params:
    """Params files read while compiling, each once, with the -S overrides applied."""

    def __init__(self, root: Path, overrides: Overrides) -> None:
        self.root = root
        self.files: dict[str, dict[str, Any]] = {}
        self.overrides = overrides
        known = {f for f, _, _ in overrides}
        for file in known:
            self.get(file)

    def get(self, file: str) -> dict[str, Any]:
        if file not in self.files:
            data = params_mod.load(self.root / file, file)
            for f, key, value in self.overrides:
                if f == file:
                    data = params_mod.override(data, key, value, f"-S {key}")
            self.files[file] = data
        return self.files[file]


def compile_pipeline(root: Path, overrides: Overrides) -> Pipeline:
    """Every mistake in the definition is reported in one error, not one per run."""
    from conveyor.pipeline.template import MAX_STAGES, Context, expand

    sources = [FILE, params_mod.DEFAULT_FILE]
    files = _Params(root, overrides)
    doc = project.document(root)
    if doc is None:
        return Pipeline({}, {}, [], {}, tuple(sources))
    top = project.top(doc)
    errors = project.unknown(doc)
    variables = _vars(root, top.get("vars") or [], doc, sources)
    raw_stages = top.get("stages") or {}
    if not isinstance(raw_stages, dict):
        raise ConfigError(f"{doc.where('stages')}: 'stages' must map stage names to stages")
    ctx = Context(variables, files.get(params_mod.DEFAULT_FILE))
    stages: dict[str, Stage] = {}
    values: dict[tuple[str, str], Any] = {}
    metrics, plots = sections.top_level(top, doc, _root_normal, errors)
    made = 0  # expansions, valid or not: each costs compiling time
    for name, raw in raw_stages.items():
        where = doc.where("stages", str(name))
        try:
            _check_name(str(name), where)
            if not isinstance(raw, dict):
                raise ConfigError(
                    f"{where}: stage {name!r} must be a mapping with at least 'cmd'",
                    hint=f"write it as {name}: {{cmd: python train.py, deps: [...]}}",
                )
            for exp in expand(str(name), raw, ctx, where):
                made += 1
                try:
                    stage = _stage(root, str(name), exp, raw, ctx, files, values, doc, plots)
                except ConfigError as exc:
                    errors.append(exc)
                    continue
                if exp.name in stages:
                    raise ConfigError(
                        f"{where}: two stages are named {exp.name!r}",
                        hint="rename one: a stage's name (with its matrix values) is unique",
                    )
                stages[exp.name] = _nested(stage, metrics)
        except ConfigError as exc:
            errors.append(exc)
        if made > MAX_STAGES:  # stop here: the rest would only cost time
            errors.append(
                ConfigError(
                    f"{where}: the pipeline makes more than {MAX_STAGES} stages",
                    hint="split it into several projects, or use fewer matrix values",
                )
            )
            break
    if errors:
        from conveyor.foundation.validation import combine, flatten

        # in the order a reader meets them
        raise combine(sorted(flatten(errors), key=project.line_of))
    for file in files.files:
        if file not in sources:
            sources.append(file)
    upstream = dag.build(stages, FILE)
    return Pipeline(
        stages,
        upstream,
        dag.order(stages, upstream, FILE),
        values,
        tuple(sources),
        tuple(dict.fromkeys(metrics)),
        tuple(plots),
    )


def _stage(
    root: Path,
    name: str,
    exp: Expansion,
    raw: dict[str, Any],
    ctx: Context,
    files: _Params,
    values: dict[tuple[str, str], Any],
    doc: Located,
    plots: list[Plot],
) -> Stage:
    from conveyor.pipeline import schema  # pydantic-core: only when there are stages

    local = ctx.child(exp.local)
    local.used_params = set()
    keys = ("stages", name, "do") if "foreach" in raw else ("stages", name)
    body: dict[Any, Any] = {}
    for k, v in exp.body.items():
        at = f"{doc.where(*keys, str(k))}: stage {exp.name!r}"  # the line of the key
        body[local.render(k, at)] = local.render(v, at)
    spec = schema.validate(body, doc, keys, exp.name)
    line = int(doc.where(*keys).rpartition(":")[2] or 0)
    stage = _resolve(root, exp.name, spec, local.used_params, files, values, doc, keys, plots)
    return stage._replace(line=line)


def _nested(stage: Stage, metrics: list[str]) -> Stage:
    """Metrics and plots files inside one of the stage's out folders (dvclive writes
    ``dvclive/metrics.json`` inside ``outs: [dvclive]``) are read from that folder, not stored
    twice (the graph would refuse an out inside another)."""
    folders = [o.path + "/" for o in stage.outs if o.kind == "outs"]
    kept: list[Out] = []
    for out in stage.outs:
        if out.kind != "outs" and any(out.path.startswith(f) for f in folders):
            if out.kind == "metrics":
                metrics.append(out.path)
        else:
            kept.append(out)
    return stage._replace(outs=tuple(kept))


def _root_normal(path: str, where: str, what: str) -> str:
    return _normal("", path, where, what)


def _check_name(name: str, where: str) -> None:
    if not name or not set(name) <= _NAME_CHARS:
        raise ConfigError(
            f"{where}: stage name {name!r} may hold only letters, digits, '_', '-' and '.'"
        )


def _vars(root: Path, entries: Any, doc: Located, sources: list[str]) -> dict[str, Any]:
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise ConfigError(f"{doc.where('vars')}: 'vars' is a list of mappings or file names")
    merged: dict[str, Any] = {}
    for entry in entries:
        if isinstance(entry, dict):
            merged.update(entry)
        elif isinstance(entry, str):
            rel = _normal("", entry, doc.where("vars"), "vars file")
            if not (root / rel).exists():
                raise ConfigError(f"{doc.where('vars')}: vars file {entry} does not exist")
            sources.append(rel)
            merged.update(params_mod.load(root / rel, rel))
        else:
            raise ConfigError(f"{doc.where('vars')}: each 'vars' entry is a mapping or a file")
    return merged


def _at(doc: Located, keys: tuple[str, ...], key: str, name: str) -> str:
    return f"{doc.where(*keys, key)}: stage {name!r}"


def _resolve(
    root: Path,
    name: str,
    spec: dict[str, Any],
    used: set[str],
    files: _Params,
    values: dict[tuple[str, str], Any],
    doc: Located,
    keys: tuple[str, ...],
    plots: list[Plot],
) -> Stage:
    wdir = (
        _normal("", spec["wdir"], _at(doc, keys, "wdir", name), "wdir")
        if spec["wdir"] != "."
        else ""
    )
    if wdir and not (root / wdir).is_dir():
        raise ConfigError(f"{doc.where(*keys, 'wdir')}: stage {name!r}: wdir {wdir} is no folder")
    deps = tuple(_normal(wdir, d, _at(doc, keys, "deps", name), "dep") for d in spec["deps"])
    outs: list[Out] = []
    for kind in KINDS:
        default_cache = kind == "outs"
        for item in spec[kind]:
            path, flags = (
                (item, None) if isinstance(item, str) else _single(item, doc, keys, kind, name)
            )
            cache = default_cache if flags is None else flags["cache"]
            persist = False if flags is None else flags["persist"]
            rel = _normal(
                wdir, path, _at(doc, keys, kind, name), kind[:-1] if kind != "metrics" else kind
            )
            check_out(rel, _at(doc, keys, kind, name))  # never .git, a pointer, conveyor.lock
            outs.append(Out(rel, cache, persist, kind))
            if kind == "plots":
                plots.append(_stage_plot(wdir, rel, flags, _at(doc, keys, kind, name)))
    refs: list[tuple[str, str]] = []
    default = _normal(wdir, params_mod.DEFAULT_FILE, doc.where(*keys), "params file")
    for item in spec["params"]:
        if isinstance(item, str):
            file, key = params_mod.split_name(item, "")
            refs.append(
                (
                    _normal(wdir, file, _at(doc, keys, "params", name), "params file")
                    if file
                    else default,
                    key,
                )
            )
        else:
            for file, ks in item.items():
                rel = _normal(wdir, file, _at(doc, keys, "params", name), "params file")
                if ks:
                    refs.extend((rel, k) for k in ks)
                else:
                    data = files.get(rel)
                    if not (root / rel).exists():
                        raise ConfigError(
                            f"{doc.where(*keys, 'params')}: stage {name!r}: params file {rel} "
                            "does not exist"
                        )
                    refs.extend((rel, k) for k in data)
    refs.extend((params_mod.DEFAULT_FILE, k) for k in sorted(used))
    unique: dict[tuple[str, str], None] = {}
    for file, key in refs:
        data = files.get(file)
        where = f"{doc.where(*keys, 'params')}: stage {name!r}"
        if not (root / file).exists() and not data:
            raise ConfigError(
                f"{where}: params file {file} does not exist",
                hint=f"create {file}, or name the param's file as other.yaml:{key}",
            )
        values[(file, key)] = params_mod.require(data, key, f"{where} ({file})")
        unique[(file, key)] = None
    cmd = (spec["cmd"],) if isinstance(spec["cmd"], str) else tuple(spec["cmd"])
    if not cmd or not all(c.strip() for c in cmd):
        raise ConfigError(f"{doc.where(*keys, 'cmd')}: stage {name!r}: 'cmd' is empty")
    env = tuple(sorted((k, _env_value(v)) for k, v in spec["env"].items()))
    try:
        needs = resources.parse(spec["resources"])
    except resources.BadResource as exc:
        raise ConfigError(
            f"{doc.where(*keys, 'resources', exc.key)}: stage {name!r}: resources: {exc}",
            hint=exc.hint,
        ) from None
    return Stage(
        name,
        cmd,
        wdir,
        deps,
        tuple(unique),
        tuple(outs),
        env,
        spec["frozen"],
        spec["always_changed"],
        spec["desc"],
        resources=needs,
    )


def _stage_plot(wdir: str, rel: str, flags: dict[str, Any] | None, where: str) -> Plot:
    props = {k: v for k, v in (flags or {}).items() if k in sections.PLOT_KEYS and v is not None}

    def normal(path: str, at: str, what: str) -> str:
        return rel if path == rel else _normal(wdir, path, at, what)

    return sections.plot(rel, props, where, normal)


def _single(item: dict[str, Any], doc: Located, keys: tuple[str, ...], kind: str, name: str) -> Any:
    if len(item) != 1:
        raise ConfigError(
            f"{_at(doc, keys, kind, name)}: each entry of {kind!r} is a path or one "
            "{path: {cache: ..., persist: ...}} mapping"
        )
    ((path, flags),) = item.items()
    return path, flags


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _normal(wdir: str, path: str, where: str, what: str) -> str:
    """``path`` (relative to ``wdir``) relative to the root, refusing anything that leaves it."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{where}: an empty {what} path")
    if os.path.isabs(path):
        raise ConfigError(
            f"{where}: {what} {path} is absolute", hint="write paths relative to the stage's wdir"
        )
    rel = os.path.normpath(os.path.join(wdir, path)).replace(os.sep, "/")
    if rel == ".." or rel.startswith("../"):
        raise ConfigError(
            f"{where}: {what} {path} is outside the project",
            hint="paths are relative to the stage's wdir and must stay inside the project",
        )
    if rel == "." or rel.split("/")[0] == CONTROL_DIR:
        raise ConfigError(f"{where}: {what} {path} is the project root or conveyor's own folder")
    return rel


def _check_stages(raw: Any, doc: Located, root: Path) -> Pipeline:
    return compile_pipeline(root, [])


def _check_vars(raw: Any, doc: Located, root: Path) -> dict[str, Any]:
    return _vars(root, raw, doc, [])


def _check_top_level(name: str) -> project.Parse:
    def check(raw: Any, doc: Located, root: Path) -> Any:
        errors: list[ConfigError] = []
        metrics, plots = sections.top_level({name: raw}, doc, _root_normal, errors)
        if errors:
            from conveyor.foundation.validation import combine

            raise combine(errors)
        return {"metrics": metrics, "plots": plots}.get(name, raw)

    return check


# stages and vars are compiled together (a stage reads the vars); the whole pipeline is the value
project.register("stages", _check_stages, owner=__package__ or "")
project.register("vars", _check_vars, owner=__package__ or "")
for _name in ("metrics", "plots", "artifacts"):
    project.register(_name, _check_top_level(_name), owner=__package__ or "")
