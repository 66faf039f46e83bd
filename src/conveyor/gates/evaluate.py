"""Evaluating checks: each gate's value, baseline, interval and verdict.

The engine does no I/O of its own choosing: a :class:`Context` hands it the candidate's metrics,
a reader of predictions tables, the baselines a ``vs:`` names, and the candidate model. The CLI
builds the context (from the workspace or a run, the registry, git revisions); tests build one
from plain values.

Verdicts: ``pass``, ``fail``, ``inconclusive`` (too few examples to tell: never a pass),
``skipped`` (nothing to compare with yet: a first model has no baseline), ``error`` (the check
could not be evaluated: a missing metric or file). A ``warn`` check never blocks.
"""

from __future__ import annotations

from typing import Any

from conveyor.foundation.errors import ConveyorError
from conveyor.gates.behaviour import evaluate as judge
from conveyor.gates.config import Check, Gates

# Context and Result live in their own modules so that behaviour.py needs no import of this one;
# they are named here too, where callers have always found them.
from conveyor.gates.context import Baseline as Baseline
from conveyor.gates.context import Context as Context
from conveyor.gates.errors import CheckConfigError, CheckInputError, GateError
from conveyor.gates.errors import NoBaseline as NoBaseline
from conveyor.gates.result import Result as Result
from conveyor.stats import metrics
from conveyor.stats.paired import paired as compare_paired

MIN_EXAMPLES = 30  # paired examples needed for a significance verdict
MIN_SLICE = 30  # examples a slice needs to be held to the gate


def evaluate(gates: Gates, ctx: Context) -> list[Result]:
    results = []
    for check in gates.checks:
        try:
            result = _one(check, gates, ctx)
        except ConveyorError as exc:
            result = _result(check, "error", detail=str(exc).replace("\n  hint:", "; hint:"))
        results.append(result)
    return results


def _result(check: Check, verdict: str, **fields: Any) -> Result:
    return Result(check.name, check.kind, check.severity, verdict, **fields)


def _one(check: Check, gates: Gates, ctx: Context) -> Result:
    if check.kind == "metric":
        return _metric(check, gates, ctx)
    if check.kind == "tests":
        return _tests(check, ctx)
    return judge(check, ctx, _result)


# -- metric checks ----------------------------------------------------------------------------


def _metric(check: Check, gates: Gates, ctx: Context) -> Result:
    spec = check.spec
    key = spec["metric"]
    notes: list[str] = []
    base = None
    if "vs" in spec:
        try:
            base = ctx.baseline(str(spec["vs"]))
        except NoBaseline as exc:
            notes.append(f"no baseline yet ({exc.message}): the change check is skipped")
    if spec.get("slice_by"):
        return _sliced(check, gates, ctx, base, notes)
    value = _metric_value(ctx.metrics, key, "the candidate")
    verdicts: list[str] = []
    detail: list[str] = []
    _thresholds(spec, value, verdicts, detail)
    result = _result(check, "pass", value=value, notes=notes)
    if base is not None:
        if _confidence(spec, gates):
            _significance(check, gates, ctx, base, result, verdicts, detail)
        else:
            b = _metric_value(base.metrics, key, base.label)
            result.baseline = b
            _change(spec, value, b, verdicts, detail, result.notes)
    if not verdicts:
        result.verdict = "skipped"
        detail.append("nothing to check without a baseline")
    else:
        result.verdict = _worst(verdicts)
    result.detail = "; ".join(detail)
    return result


def _thresholds(spec: dict[str, Any], value: float, verdicts: list[str], detail: list[str]) -> None:
    if "min" in spec:
        ok = value >= spec["min"]
        verdicts.append("pass" if ok else "fail")
        detail.append(f"{_fmt(value)} {'>=' if ok else '<'} min {_fmt(spec['min'])}")
    if "max" in spec:
        ok = value <= spec["max"]
        verdicts.append("pass" if ok else "fail")
        detail.append(f"{_fmt(value)} {'<=' if ok else '>'} max {_fmt(spec['max'])}")


def _change(
    spec: dict[str, Any],
    value: float,
    base: float,
    verdicts: list[str],
    detail: list[str],
    notes: list[str],
) -> None:
    relative = bool(spec.get("relative"))
    delta = metrics.change(value, base, relative=relative)
    if delta is None:
        verdicts.append("error")
        detail.append("the baseline is 0: a relative change is undefined; use an absolute one")
        return
    verdicts.append(_within(spec, delta, delta))
    unit = " (relative)" if relative else ""
    detail.append(f"change {_signed(delta)}{unit}{_bounds(spec)}")
    if relative:
        notes.append("change = (candidate - baseline) / |baseline|")


def _within(spec: dict[str, Any], low: float, high: float) -> str:
    """Pass when the change's lower bound clears min_change and its upper bound max_change."""
    if "min_change" in spec and low < spec["min_change"]:
        return "fail"
    if "max_change" in spec and high > spec["max_change"]:
        return "fail"
    return "pass"


def _bounds(spec: dict[str, Any]) -> str:
    parts = []
    if "min_change" in spec:
        parts.append(f">= {_signed(spec['min_change'])}")
    if "max_change" in spec:
        parts.append(f"<= {_signed(spec['max_change'])}")
    return f", needs {' and '.join(parts)}" if parts else ""


def _significance(
    check: Check,
    gates: Gates,
    ctx: Context,
    base: Baseline,
    result: Result,
    verdicts: list[str],
    detail: list[str],
) -> None:
    spec = check.spec
    name = _statistic(spec)
    path = _predictions_path(spec, gates)
    paired = _pair(ctx.predictions(path), base.predictions(path), path, base.label)
    outcome = _compare(spec, gates, name, paired)
    result.n = outcome["n"]
    if outcome["verdict"] == "inconclusive":
        verdicts.append("inconclusive")
        detail.append(outcome["detail"])
        return
    result.baseline = outcome["baseline"]
    result.interval = outcome["interval"]
    verdicts.append(outcome["verdict"])
    detail.append(outcome["detail"])
    result.notes.extend(outcome["notes"])


def _compare(spec: dict[str, Any], gates: Gates, name: str, paired: Any) -> dict[str, Any]:
    """One paired comparison (of all examples, or of a slice's)."""
    n = len(paired)
    least = int(spec.get("min_examples", MIN_EXAMPLES))
    if n < least:
        return {
            "n": n,
            "verdict": "inconclusive",
            "detail": f"{n} paired examples; at least {least} are needed to tell",
        }
    confidence = _confidence(spec, gates) or 0.95
    resamples = int(spec.get("resamples") or gates.defaults.get("resamples", 1000))
    column = "prediction" if name in metrics.COUNTING else "score"
    for side in ("c", "b"):
        if f"{column}_{side}" not in paired.columns:
            raise CheckInputError(
                f"{name} needs a {column!r} column in the predictions file",
                hint="write id, label, score and prediction for every example",
            )
    r = compare_paired(
        name,
        paired["label"].to_numpy(),
        paired[f"{column}_c"].to_numpy(),
        paired[f"{column}_b"].to_numpy(),
        confidence=confidence,
        resamples=resamples,
    )
    low, high = r.low, r.high
    relative = bool(spec.get("relative"))
    if relative:
        if r.baseline == 0:
            return {"n": n, "verdict": "error", "baseline": 0.0, "interval": None, "notes": [],
                    "detail": "the baseline is 0: a relative change is undefined"}  # fmt: skip
        low, high = low / abs(r.baseline), high / abs(r.baseline)
    verdict = _within(spec, low, high)
    pct = f"{confidence:.0%}"
    unit = " (relative)" if relative else ""
    detail = (
        f"change {_signed(r.difference / abs(r.baseline) if relative else r.difference)}{unit}, "
        f"{pct} interval [{_signed(low)}, {_signed(high)}] on {n} paired examples{_bounds(spec)}"
    )
    notes = [f"{r.method}"]
    if r.p_value is not None:
        notes.append(f"McNemar exact p = {r.p_value:.3g}")
    return {"n": n, "verdict": verdict, "baseline": r.baseline, "interval": (low, high),
            "detail": detail, "notes": notes, "candidate": r.candidate}  # fmt: skip


def _sliced(
    check: Check, gates: Gates, ctx: Context, base: Baseline | None, notes: list[str]
) -> Result:
    spec = check.spec
    if base is None and "min" not in spec and "max" not in spec:
        return _result(check, "skipped", notes=notes, detail="nothing to check without a baseline")
    name = _statistic(spec)
    path = _predictions_path(spec, gates)
    table = ctx.predictions(path)
    columns = spec["slice_by"]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise CheckInputError(
            f"{path} has no column {', '.join(missing)} to slice by",
            hint=f"its columns: {', '.join(map(str, table.columns))}",
        )
    least = int(spec.get("min_size", MIN_SLICE))
    paired = None
    if base is not None:
        paired = _pair(table, base.predictions(path), path, base.label)
    rows: list[dict[str, Any]] = []
    verdicts: list[str] = []
    for key, group in table.groupby(columns, sort=True):
        label = ", ".join(f"{c}={v}" for c, v in zip(columns, _tuple(key), strict=True))
        if len(group) < least:
            rows.append({"slice": label, "n": len(group), "verdict": "skipped",
                         "detail": f"{len(group)} examples < min_size {least}"})  # fmt: skip
            continue
        value = _compute(name, group)
        v: list[str] = []
        d: list[str] = []
        _thresholds(spec, value, v, d)
        row: dict[str, Any] = {"slice": label, "n": len(group), "value": value}
        if paired is not None and ("min_change" in spec or "max_change" in spec):
            mask = _mask(paired, columns, key)
            outcome = _compare(spec, gates, name, paired[mask]) if _confidence(spec, gates) else (
                _plain_change(spec, name, paired[mask])
            )  # fmt: skip
            v.append(outcome["verdict"])
            d.append(outcome["detail"])
            row["baseline"] = outcome.get("baseline")
            row["interval"] = outcome.get("interval")
        row["verdict"] = _worst(v) if v else "skipped"
        row["detail"] = "; ".join(d)
        rows.append(row)
        verdicts.append(row["verdict"])
    judged = [r for r in rows if r["verdict"] != "skipped"]
    if not judged:
        return _result(check, "inconclusive", slices=rows, notes=notes,
                       detail=f"no slice has {least} examples")  # fmt: skip
    higher = name in metrics.HIGHER_IS_BETTER
    worst = min(
        judged, key=lambda r: (r["verdict"] == "pass", float(r["value"]) * (1 if higher else -1))
    )
    verdict = _worst(verdicts)
    detail = f"worst slice {worst['slice']}: {worst['detail'] or _fmt(worst['value'])}"
    return _result(check, verdict, value=worst["value"], baseline=worst.get("baseline"),
                   interval=worst.get("interval"), n=worst["n"], detail=detail, notes=notes,
                   slices=rows)  # fmt: skip


def _confidence(spec: dict[str, Any], gates: Gates) -> float | None:
    """The check's confidence, or the gates' default for checks with a baseline; None: none."""
    level = spec.get("confidence") or (gates.defaults.get("confidence") if "vs" in spec else None)
    return float(level) if level else None


def _plain_change(spec: dict[str, Any], name: str, paired: Any) -> dict[str, Any]:
    cand = _compute(name, paired, "_c")
    base = _compute(name, paired, "_b")
    verdicts: list[str] = []
    detail: list[str] = []
    _change(spec, cand, base, verdicts, detail, [])
    return {"verdict": _worst(verdicts), "detail": "; ".join(detail), "baseline": base}


def _compute(name: str, table: Any, suffix: str = "") -> float:
    def col(c: str) -> Any:
        key = f"{c}{suffix}"
        return table[key].to_numpy() if key in table.columns else None

    label = table["label"].to_numpy()
    return metrics.compute(name, label, prediction=col("prediction"), score=col("score"))


def _mask(paired: Any, columns: list[str], key: Any) -> Any:
    mask = None
    for c, v in zip(columns, _tuple(key), strict=True):
        here = paired[c] == v
        mask = here if mask is None else mask & here
    return mask


def _tuple(key: Any) -> tuple[Any, ...]:
    return key if isinstance(key, tuple) else (key,)


def _pair(candidate: Any, baseline: Any, path: str, label: str) -> Any:
    """Candidate and baseline rows of the same examples, joined by ``id``."""
    for table, who in ((candidate, "the candidate"), (baseline, label)):
        for column in ("id", "label"):
            if column not in table.columns:
                raise CheckInputError(
                    f"{path} of {who} has no {column!r} column",
                    hint="predictions files need id and label (and score and/or prediction)",
                )
    for table, who in ((candidate, "the candidate"), (baseline, label)):
        if table["id"].duplicated().any():
            raise CheckInputError(
                f"{path} of {who} gives one id to several rows",
                hint="an id names one evaluation example: pairing needs them unique",
            )
    keep = [c for c in ("id", "label", "score", "prediction") if c in baseline.columns]
    merged = candidate.merge(baseline[keep], on="id", suffixes=("_c", "_b"))
    if len(merged) and (merged["label_c"] != merged["label_b"]).any():
        raise CheckInputError(
            f"{path}: the candidate and {label} give different labels to the same ids",
            hint="they were evaluated on different data: compare on the same evaluation set",
        )
    merged["label"] = merged.pop("label_c")
    merged.pop("label_b")
    return merged


def _statistic(spec: dict[str, Any]) -> str:
    name = spec.get("score") or metrics.metric_name(spec["metric"])
    if name is None or name not in metrics.METRICS:
        raise CheckConfigError(
            f"cannot recompute {spec['metric']!r} from predictions",
            hint=f"name the statistic with score: (one of {', '.join(metrics.METRICS)})",
        )
    return str(name)


def _predictions_path(spec: dict[str, Any], gates: Gates) -> str:
    path = spec.get("predictions") or gates.predictions
    if not path:
        raise CheckConfigError(
            "this check needs a predictions file",
            hint="set gates.predictions (e.g. eval/predictions.csv) or predictions: on the check",
        )
    return str(path)


def _metric_value(metrics: dict[str, Any], key: str, who: str) -> float:
    value = metrics.get(key)
    if value is None:
        close = [k for k in metrics if k.endswith("." + key.rsplit(".", 1)[-1])]
        hint = f"metrics: {', '.join(sorted(metrics)[:12]) or 'none'}"
        if close:
            hint = f"did you mean {close[0]!r}?"
        raise CheckInputError(f"{who} has no metric {key!r}", hint=hint)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CheckInputError(f"metric {key!r} of {who} is {value!r}, not a number")
    return float(value)


# -- the project's tests ----------------------------------------------------------------------


def _tests(check: Check, ctx: Context) -> Result:
    if ctx.run_tests is None:
        raise GateError("the tests check cannot run here")
    counts = ctx.run_tests(check.spec["tests"], check.spec.get("junit"))
    ok = counts.exit_code == 0 and counts.failed == 0 and counts.errors == 0 and counts.total > 0
    detail = (
        f"{counts.passed} passed, {counts.failed} failed, {counts.errors} errors, "
        f"{counts.skipped} skipped (exit {counts.exit_code})"
    )
    if counts.total == 0:
        detail = f"no test ran (exit {counts.exit_code})"
    return _result(check, "pass" if ok else "fail", value=counts.passed, n=counts.total,
                   detail=detail)  # fmt: skip


# -- helpers ----------------------------------------------------------------------------------

_ORDER = ("error", "fail", "inconclusive", "skipped", "pass")


def _worst(verdicts: list[str]) -> str:
    return min(verdicts, key=_ORDER.index)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _signed(value: float) -> str:
    return f"{value:+.4g}"
