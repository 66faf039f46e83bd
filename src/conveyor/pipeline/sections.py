"""DVC's top-level sections of ``conveyor.yaml``: ``metrics``, ``plots`` and ``artifacts``.

A plot is a path, or ``{id: props}`` whose props name the files and columns (``x``, ``y``), the
``template`` and the labels. A stage's plots entries take the same props. Pure functions over
the parsed document; ``normal`` turns a path as written into one relative to the root.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean
from conveyor.foundation.yamlio import Located
from conveyor.pipeline.stage import Plot

PLOT_KEYS = ("x", "y", "template", "title", "x_label", "y_label")
ARTIFACT_KEYS = ("path", "type", "desc", "labels", "meta")
Normal = Callable[[str, str, str], str]  # (path, where, what) -> path relative to the root


# What to do about a plot of the wrong shape: DVC's, shown in docs/pipelines.md.
_SHAPE = (
    "write each plot as DVC does, e.g. - ROC: {x: fpr, y: {eval/roc.json: tpr}} "
    "(docs/pipelines.md, Moving from DVC)"
)
_ARTIFACT = "write each as NAME: {path: model.pkl, type: model}"


def top_level(
    top: dict[str, Any], doc: Located, normal: Normal, errors: list[ConfigError]
) -> tuple[list[str], list[Plot]]:
    """DVC's top-level metrics, plots and artifacts of ``top`` (paths relative to the root);
    each mistake is added to ``errors``."""
    metrics: list[str] = []
    plots_: list[Plot] = []
    try:
        if top.get("metrics") is not None:
            metrics = metrics_files(top["metrics"], doc, normal)
    except ConfigError as exc:
        errors.append(exc)
    if top.get("plots") is not None:
        plots_ = plots(top["plots"], doc, normal, errors)
    if top.get("artifacts") is not None:
        artifacts(top["artifacts"], doc, normal, errors)
    return metrics, plots_


def metrics_files(raw: Any, doc: Located, normal: Normal) -> list[str]:
    """Top-level ``metrics:``: a list of metrics files (or folders of them, as DVC allows)."""
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ConfigError(
            f"{doc.where('metrics')}: 'metrics' is a list of metrics files",
            hint="write it as a YAML list: metrics: [metrics/eval.json]",
        )
    return [normal(p, doc.where("metrics", str(i)), "metrics file") for i, p in enumerate(raw)]


def plots(raw: Any, doc: Located, normal: Normal, errors: list[ConfigError]) -> list[Plot]:
    """Top-level ``plots:`` as DVC writes it; each bad entry is one error in ``errors``."""
    if not isinstance(raw, list):
        errors.append(ConfigError(f"{doc.where('plots')}: 'plots' is a list of plots", hint=_SHAPE))
        return []
    out: list[Plot] = []
    for i, item in enumerate(raw):
        where = doc.where("plots", str(i))
        try:
            if isinstance(item, str):
                out.append(plot(normal(item, where, "plots file"), None, where, normal))
            elif isinstance(item, dict) and len(item) == 1:
                ((pid, props),) = item.items()
                out.append(plot(str(pid), props, doc.where("plots", str(i), str(pid)), normal))
            else:
                raise ConfigError(
                    f"{where}: each entry of 'plots' is a path or one {{id: {{x: ..., y: ...}}}}",
                    hint=_SHAPE,
                )
        except ConfigError as exc:
            errors.append(exc)
    return out


def plot(pid: str, props: Any, where: str, normal: Normal) -> Plot:
    """One plot definition: ``pid`` is a path unless ``props['y']`` names the files."""
    props = {} if props is None else props
    if not isinstance(props, dict):
        raise ConfigError(
            f"{where}: plot {pid!r}: its properties are a mapping ({PLOT_KEYS})", hint=_SHAPE
        )
    for key in props:
        if key not in PLOT_KEYS:
            raise ConfigError(
                f"{where}: plot {pid!r}: unknown key {key!r}",
                hint=did_you_mean(str(key), PLOT_KEYS) or f"valid keys: {', '.join(PLOT_KEYS)}",
            )
        if key not in ("x", "y") and not isinstance(props[key], str):
            raise ConfigError(
                f"{where}: plot {pid!r}: {key!r} must be text",
                hint=f'quote it: {key}: "..."',
            )
    y = props.get("y")
    if isinstance(y, dict):
        ys = {
            normal(str(f), where, "plots file"): _columns(c, pid, "y", where) for f, c in y.items()
        }
        if not ys:
            raise ConfigError(f"{where}: plot {pid!r}: 'y' names no file", hint=_SHAPE)
    else:
        ys = {normal(pid, where, "plots file"): _columns(y, pid, "y", where)}
    x = props.get("x")
    if isinstance(x, dict):
        xs = {
            normal(str(f), where, "plots file"): _columns(c, pid, "x", where) for f, c in x.items()
        }
        if any(len(c) != 1 for c in xs.values()):
            raise ConfigError(f"{where}: plot {pid!r}: 'x' names one column per file", hint=_SHAPE)
        xcols = {f: c[0] for f, c in xs.items()}
    else:
        column = _columns(x, pid, "x", where)
        if len(column) > 1:
            raise ConfigError(f"{where}: plot {pid!r}: 'x' names one column", hint=_SHAPE)
        xcols = {f: column[0] if column else "" for f in ys}
    return Plot(
        pid,
        tuple(dict.fromkeys([*ys, *xcols])),
        xcols,
        ys,
        str(props.get("template", "linear")),
        str(props.get("title", "")),
        str(props.get("x_label", "")),
        str(props.get("y_label", "")),
    )


def _columns(value: Any, pid: str, axis: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(
        f"{where}: plot {pid!r}: {axis!r} is a column, a list of columns, or {{file: column}}",
        hint=_SHAPE,
    )


def artifacts(raw: Any, doc: Located, normal: Normal, errors: list[ConfigError]) -> None:
    """DVC's ``artifacts:`` (name -> {path, type, desc, labels, meta}): checked, then left to
    ``models:`` (conveyor registers models from there)."""
    if not isinstance(raw, dict):
        errors.append(
            ConfigError(
                f"{doc.where('artifacts')}: 'artifacts' maps names to paths",
                hint=_ARTIFACT,
            )
        )
        return
    for name, spec in raw.items():
        where = doc.where("artifacts", str(name))
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
            errors.append(ConfigError(f"{where}: artifact {name!r} needs a 'path'", hint=_ARTIFACT))
            continue
        unknown = [k for k in spec if k not in ARTIFACT_KEYS]
        if unknown:
            errors.append(
                ConfigError(
                    f"{doc.where('artifacts', str(name), str(unknown[0]))}: artifact {name!r}: "
                    f"unknown key {unknown[0]!r}",
                    hint=did_you_mean(str(unknown[0]), ARTIFACT_KEYS)
                    or f"valid keys: {', '.join(ARTIFACT_KEYS)}",
                )
            )
            continue
        try:
            normal(spec["path"], doc.where("artifacts", str(name), "path"), "artifact path")
        except ConfigError as exc:
            errors.append(exc)
