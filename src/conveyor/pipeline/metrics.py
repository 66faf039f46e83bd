"""Reading the metrics and params a pipeline declares, under the names a user types.

A metric is the metrics file's stem, then the key path inside it: ``eval.auc`` is ``auc`` in
``metrics/eval.json``. When two metrics files share a stem, their metrics are named by path
instead (``metrics/eval.json:auc``), which always works.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.paths import read_inside
from conveyor.pipeline import params as params_mod
from conveyor.pipeline.definition import Pipeline
from conveyor.pipeline.stale import param_name


def metric_files(pipeline: Pipeline) -> list[str]:
    """Stages' metrics files, then top-level ones and those inside stage outs (DVC's layout)."""
    files = [o.path for s in pipeline.stages.values() for o in s.outs if o.kind == "metrics"]
    return list(dict.fromkeys([*files, *pipeline.metrics]))


def files_of(pipeline: Pipeline, stages: list[str]) -> list[str]:
    """The metrics files ``stages`` write: declared by them, or inside one of their outs."""
    outs = [o for n in stages for o in pipeline.stages[n].outs]
    own = [o.path for o in outs if o.kind == "metrics"]
    written = [f for f in pipeline.metrics if any(_within(f, o.path) for o in outs)]
    return list(dict.fromkeys([*own, *written]))


def _within(path: str, out: str) -> bool:
    return path == out or path.startswith(out + "/")


def read_file(root: Path, rel: str) -> dict[str, Any]:
    """A metrics file's leaves by dotted key; a missing file reads as empty."""
    path = root / rel
    if not path.exists():
        return {}
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(f"metrics file {rel}: expected JSON, YAML or TOML")
    # Metrics reach run records, `metrics show` and the pull-request report: a metrics file a
    # repository links to ~/.docker/config.json must not carry its tokens there.
    data = read_inside(root.resolve(), rel)
    if data is None:
        raise ConfigError(
            f"metrics file {rel} is a link to {path.resolve()}, outside the project (or not a "
            "file); conveyor reads only the project's own files",
            hint=f"remove the link (`rm {rel}`) and let the stage write the file",
        )
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{rel} cannot be read: {exc}") from exc
    return leaves(params_mod.parse(text, suffix, rel))


def leaves(data: dict[str, Any]) -> dict[str, Any]:
    """A metrics file's shown values by dotted key (numbers, text, booleans)."""
    return {k: v for k, v in params_mod.flatten(data).items() if _shown(v)}


def _shown(value: Any) -> bool:
    return isinstance(value, int | float | str | bool) or value is None


def read(root: Path, files: list[str]) -> dict[str, Any]:
    """Every metric of ``files`` by its user-facing name; a folder stands for the metrics
    files inside it (DVC allows ``metrics: [eval]``)."""
    return named({file: read_file(root, file) for file in _expand(root, files)})


def _expand(root: Path, files: list[str]) -> list[str]:
    out: list[str] = []
    for rel in files:
        folder = root / rel
        if not folder.is_dir():
            out.append(rel)
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in _SUFFIXES and path.is_file():
                out.append(path.relative_to(root).as_posix())
    return list(dict.fromkeys(out))


_SUFFIXES = (".json", ".yaml", ".yml", ".toml")


def named(tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Metrics files' leaves (file -> dotted key -> value) under the names a user types."""
    stems = [PurePosixPath(f).stem for f in tables]
    out: dict[str, Any] = {}
    for (file, values), stem in zip(tables.items(), stems, strict=True):
        prefix = f"{stem}." if stems.count(stem) == 1 else f"{file}:"
        for key, value in values.items():
            out[prefix + key] = value
    return out


def used_params(pipeline: Pipeline) -> dict[str, Any]:
    """Every param a stage uses, by its user-facing name (sections flattened to leaves)."""
    return flat_params(pipeline.values)


def flat_params(values: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """(params file, key) -> value as user-facing names, sections flattened to leaves."""
    out: dict[str, Any] = {}
    for (file, key), value in sorted(values.items()):
        name = param_name(file, key)
        if isinstance(value, dict) and value:
            for sub, leaf in params_mod.flatten(value).items():
                out[f"{name}.{sub}"] = leaf
        else:
            out[name] = value
    return out
