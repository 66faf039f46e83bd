"""Checks on data and on the candidate model itself: data validation, drift, behavioural tests
(invariance, directional expectations, fixed examples) and budgets (size, latency).

    - data: data/prepared/test.csv           # every row against a schema
      schema: schema.yaml
    - drift: {reference: data/prepared/train.csv, current: data/prepared/test.csv}
    - invariance: {data: data/prepared/test.csv, column: mean_texture, delta: 0.5,
                   tolerance: 0.02, drop: [id, malignant]}
    - directional: {data: ..., column: worst_area, delta: 100, expect: increase}
    - examples: tests/model_examples.json    # [{"input": [...], "expected": 1}, ...]
    - budget: {size_mb: 5, p50_ms: 2, p99_ms: 10, batch: 256, batch_p99_ms: 50}

Behavioural checks feed rows of a data file to the model: the file's columns minus ``drop``
(default: ``id`` and ``label``) in order, as an array, or as a table for a model whose
signature names columns. A model with ``predict_proba`` is judged on the positive class's
probability, others on ``predict``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import ConveyorError
from conveyor.gates.errors import CheckConfigError, CheckInputError

if TYPE_CHECKING:
    from conveyor.gates.config import Check
    from conveyor.gates.context import Context
    from conveyor.gates.result import Result

Make = Callable[..., "Result"]


def evaluate(check: Check, ctx: Context, make: Make) -> Result:
    return _KINDS[check.kind](check, ctx, make)


def _data(check: Check, ctx: Context, make: Make) -> Result:
    from conveyor.gates import schema, tables

    spec = check.spec
    rules = schema.load(ctx.root / spec["schema"], spec["schema"])
    frame = tables.read_table(ctx.root / spec["data"])
    violations = schema.validate(frame, rules)
    errors = [v for v in violations if v.severity == "error"]
    warnings = [v for v in violations if v.severity != "error"]
    shown = [f"{v.column or 'table'}: {v.rule}: {v.detail}" for v in errors[:3]]
    detail = "; ".join(shown) if errors else f"{len(frame)} rows valid"
    if len(errors) > 3:
        detail += f"; and {len(errors) - 3} more"
    return make(
        check, "fail" if errors else "pass", value=len(errors), n=len(frame), detail=detail,
        notes=[f"warning: {v.column}: {v.detail}" for v in warnings],
        slices=[v.to_dict() for v in violations],
    )  # fmt: skip


def _drift(check: Check, ctx: Context, make: Make) -> Result:
    from conveyor.gates import tables
    from conveyor.stats import drift, frames

    inner = dict(check.spec["drift"])
    for key in ("reference", "current"):
        if not isinstance(inner.get(key), str):
            raise CheckConfigError(f"{check.where}: drift needs {key}: PATH")
    reference = tables.read_table(ctx.root / inner.pop("reference"))
    current = tables.read_table(ctx.root / inner.pop("current"))
    columns = inner.pop("columns", None)
    try:
        rules = drift.DriftRules(**inner)
    except TypeError as exc:
        raise CheckConfigError(f"{check.where}: drift: {exc}") from exc
    found = frames.compare(reference, current, columns=columns, rules=rules)
    drifted = [d.column for d in found if d.verdict == "drifted"]
    unsure = [d.column for d in found if d.verdict == "inconclusive"]
    verdict = "fail" if drifted else "inconclusive" if unsure else "pass"
    detail = (
        f"drifted: {', '.join(drifted)}" if drifted
        else f"too little data: {', '.join(unsure)}" if unsure
        else f"{len(found)} columns stable"
    )  # fmt: skip
    return make(check, verdict, value=len(drifted), n=len(current), detail=detail,
                slices=[d.to_dict() for d in found])  # fmt: skip


# -- the model's behaviour --------------------------------------------------------------------


def _rows(ctx: Context, spec: dict[str, Any], model: Any) -> tuple[Any, list[str]]:
    """The data file's feature columns: (a float array or a DataFrame, their names)."""
    from conveyor.gates import tables

    path = spec.get("data")
    if not isinstance(path, str):
        raise CheckConfigError("a behavioural check needs data: PATH (rows to feed the model)")
    frame = tables.read_table(ctx.root / path)
    drop = spec.get("drop", ["id", "label"])
    frame = frame.drop(columns=[c for c in drop if c in frame.columns])
    limit = int(spec.get("rows", 1000))
    frame = frame.head(limit)
    if frame.empty:
        raise CheckInputError(f"{path} has no rows to feed the model")
    names = [str(c) for c in frame.columns]
    sig = getattr(model, "signature", None)
    if sig is not None and sig.tabular:
        return frame, names
    return frame.to_numpy(dtype=float), names


def _scores(model: Any, rows: Any) -> Any:
    import numpy as np

    if hasattr(model, "predict_proba"):
        try:
            proba = np.asarray(model.predict_proba(rows))
            return proba[:, -1] if proba.ndim == 2 else proba
        except ConveyorError:
            pass  # a package whose model gives no probabilities
    return np.asarray(model.predict(rows), dtype=float)


def _perturbed(rows: Any, names: list[str], column: Any, delta: float) -> Any:
    if not isinstance(column, str):
        raise CheckConfigError("name the column to change with column: NAME")
    if column not in names:
        raise CheckConfigError(
            f"no column {column!r} in the data", hint=f"columns: {', '.join(names)}"
        )
    out = rows.copy()
    if hasattr(out, "columns"):
        out[column] = out[column] + delta
    else:
        out[:, names.index(column)] += delta
    return out


def _model(ctx: Context) -> Any:
    if ctx.model is None:
        raise CheckConfigError(
            "this check needs the candidate model",
            hint="name it with gates.model (a model declared under models:)",
        )
    return ctx.model()


def _invariance(check: Check, ctx: Context, make: Make) -> Result:
    import numpy as np

    spec = check.spec["invariance"]
    model = _model(ctx)
    rows, names = _rows(ctx, spec, model)
    column, delta = spec.get("column"), float(spec.get("delta", 0))
    tolerance = float(spec.get("tolerance", 0.0))
    base = _scores(model, rows)
    worst = np.zeros(len(base))
    for sign in (1, -1):
        moved = _scores(model, _perturbed(rows, names, column, sign * delta))
        worst = np.maximum(worst, np.abs(moved - base))
    broken = int(np.sum(worst > tolerance))
    allowed = float(spec.get("max_fraction", 0.0))
    ok = broken <= allowed * len(base)
    detail = (
        f"{broken} of {len(base)} rows moved more than {tolerance:g} when {column} changed by "
        f"±{delta:g} (largest {float(worst.max()):.4g})"
    )
    return make(check, "pass" if ok else "fail", value=broken, n=len(base), detail=detail)


def _directional(check: Check, ctx: Context, make: Make) -> Result:
    import numpy as np

    spec = check.spec["directional"]
    expect = spec.get("expect", "increase")
    if expect not in ("increase", "decrease"):
        raise CheckConfigError(f"{check.where}: expect is increase or decrease, not {expect!r}")
    model = _model(ctx)
    rows, names = _rows(ctx, spec, model)
    column, delta = spec.get("column"), float(spec.get("delta", 1))
    tolerance = float(spec.get("tolerance", 0.0))
    moved = _scores(model, _perturbed(rows, names, column, delta)) - _scores(model, rows)
    wrong = moved < -tolerance if expect == "increase" else moved > tolerance
    broken = int(np.sum(wrong))
    allowed = float(spec.get("max_fraction", 0.0))
    ok = broken <= allowed * len(moved)
    detail = (
        f"{broken} of {len(moved)} rows went against '{expect}' when {column} rose by {delta:g}"
    )
    return make(check, "pass" if ok else "fail", value=broken, n=len(moved), detail=detail)


def _examples(check: Check, ctx: Context, make: Make) -> Result:
    import numpy as np

    target = check.spec["examples"]
    file = target if isinstance(target, str) else str(target.get("file"))
    path = ctx.root / file
    try:
        cases = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckInputError(f"{file}: cannot read the examples: {exc}") from exc
    if not isinstance(cases, list) or not all(isinstance(c, dict) and "input" in c for c in cases):
        raise CheckInputError(f'{file}: a list of {{"input": ..., "expected": ...}}')
    model = _model(ctx)
    failures = []
    for i, case in enumerate(cases):
        given = case["input"]
        rows = [given] if not isinstance(given, dict) else {k: [v] for k, v in given.items()}
        got = np.asarray(model.predict(np.asarray(rows) if isinstance(rows, list) else rows))
        value = got.reshape(-1)[0].item() if got.size else None
        want = case.get("expected")
        tol = float(case.get("tolerance", 0))
        numeric = isinstance(value, int | float) and isinstance(want, int | float)
        same = value == want if tol == 0 or not numeric else abs(value - want) <= tol
        if not same:
            failures.append(f"#{i + 1} {case.get('name', '')}: expected {want!r}, got {value!r}")
    detail = "; ".join(failures[:3]) if failures else f"{len(cases)} examples as expected"
    return make(check, "fail" if failures else "pass", value=len(failures), n=len(cases),
                detail=detail)  # fmt: skip


def _budget(check: Check, ctx: Context, make: Make) -> Result:
    import numpy as np

    spec = check.spec["budget"]
    measured: dict[str, float] = {}
    over = []
    if "size_mb" in spec:
        if ctx.model_folder is None:
            raise CheckConfigError("a size budget needs the model package (gates.model)")
        size = sum(p.stat().st_size for p in ctx.model_folder.rglob("*") if p.is_file())
        measured["size_mb"] = size / 2**20
    timing = [k for k in ("p50_ms", "p99_ms", "batch_p50_ms", "batch_p99_ms") if k in spec]
    if timing:
        model = _model(ctx)
        rows = _example_rows(ctx, spec, model)
        batch = int(spec.get("batch", 100))
        repeats = int(spec.get("repeats", 200))
        one = rows[:1]
        many = _tile(rows, batch)
        for name, data, times in (("", one, repeats), ("batch_", many, max(20, repeats // 5))):
            if not any(k.startswith(name) and (name or not k.startswith("batch_")) for k in timing):
                continue
            model.predict(data)  # warm
            seconds = []
            for _ in range(times):
                start = time.perf_counter()
                model.predict(data)
                seconds.append(time.perf_counter() - start)
            p50, p99 = np.quantile(seconds, [0.5, 0.99]) * 1000
            measured[f"{name}p50_ms"], measured[f"{name}p99_ms"] = float(p50), float(p99)
    for key, limit in spec.items():
        if key in measured and measured[key] > float(limit):
            over.append(f"{key} {measured[key]:.3g} > {float(limit):g}")
    shown = ", ".join(f"{k} {v:.3g}" for k, v in measured.items() if k in spec)
    return make(check, "fail" if over else "pass", value=measured,
                detail="over budget: " + "; ".join(over) if over else shown)  # fmt: skip


def _example_rows(ctx: Context, spec: dict[str, Any], model: Any) -> Any:
    import numpy as np

    if "data" in spec:
        return _rows(ctx, spec, model)[0]
    folder = ctx.model_folder
    example = folder / "input_example.json" if folder else None
    if example is None or not example.exists():
        raise CheckConfigError(
            "a latency budget needs rows: data: PATH, or a package saved with an example"
        )
    data = json.loads(example.read_text())
    if isinstance(data, dict):
        import pandas as pd

        return pd.DataFrame(data["data"], columns=data["columns"])
    return np.asarray(data)


def _tile(rows: Any, n: int) -> Any:
    import numpy as np

    reps = -(-n // len(rows))
    if hasattr(rows, "iloc"):
        import pandas as pd

        return pd.concat([rows] * reps, ignore_index=True).iloc[:n]
    return np.concatenate([rows] * reps)[:n]


_KINDS: dict[str, Callable[[Check, Context, Make], Result]] = {
    "data": _data,
    "drift": _drift,
    "invariance": _invariance,
    "directional": _directional,
    "examples": _examples,
    "budget": _budget,
}
