"""``conveyor schema infer|validate`` and ``conveyor drift``: a dataset's schema and its drift.

DATA is a CSV, TSV, Parquet or JSON Lines file, or a folder of them. pandas and scipy are
imported inside the handlers: ``conveyor --help`` loads neither.
"""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.cli.app import UsageError, arg, command, group
from conveyor.cli.output import echo, table

if TYPE_CHECKING:
    from conveyor.stats.drift import ColumnDrift

_DATA = "a CSV, TSV, Parquet or JSON Lines file, or a folder of them"

group("schema", help="infer a dataset's schema, or validate data against one")


@command(
    "schema infer",
    arg("data", metavar="DATA", help=_DATA),
    arg("-o", "--output", metavar="FILE", help="write the schema to FILE (default: print it)"),
    arg(
        "--max-categories",
        type=int,
        default=20,
        metavar="N",
        help="text and integer columns with at most N distinct values get a category set "
        "(default 20)",
    ),
    arg(
        "--slack",
        type=float,
        default=0.1,
        metavar="FRACTION",
        help="widen each min/max by this share of its range (default 0.1; 0 for the exact range)",
    ),
    help="write the schema a dataset satisfies: types, nulls, ranges, categories, uniqueness",
)
def infer_cmd(opts: Namespace) -> None:
    """Infer a schema (YAML) from DATA: per column its type, nullability, range, category set
    and uniqueness, and the accepted row count. Edit it, commit it, and check new data with
    `conveyor schema validate` or a data: gate."""
    from conveyor.gates import schema, tables

    if opts.max_categories < 0 or opts.slack < 0:
        raise UsageError("--max-categories and --slack cannot be negative")
    frame = tables.read_table(opts.data)
    inferred = schema.infer(frame, max_categories=opts.max_categories, slack=opts.slack)
    text = schema.dump(inferred, source=f"{opts.data} ({len(frame)} rows)")
    if not opts.output:
        sys.stdout.write(text)
        return
    from conveyor.foundation.atomic import write_text

    write_text(Path(opts.output), text, parents=True)
    echo(f"wrote {opts.output}: {len(inferred.columns)} columns, from {len(frame)} rows")


@command(
    "schema validate",
    arg("data", metavar="DATA", help=_DATA),
    arg("schema", metavar="SCHEMA", help="a schema file (conveyor schema infer)"),
    arg("--json", dest="as_json", action="store_true", help="JSON for machines"),
    help="check a dataset against a schema (exit 1 on a violation)",
)
def validate_cmd(opts: Namespace) -> int:
    """Check DATA against SCHEMA and list every violation with its column, rule and count.
    Exit 0 when nothing fails (warnings, such as an unexpected column, do not), 1 when a rule
    is broken, 2 when the schema file itself is wrong."""
    from conveyor.gates import schema, tables

    rules = schema.load(Path(opts.schema), opts.schema)
    frame = tables.read_table(opts.data)
    found = schema.validate(frame, rules)
    failed = any(v.severity == "error" for v in found)
    if opts.as_json:
        report = {
            "data": opts.data,
            "schema": opts.schema,
            "rows": len(frame),
            "passed": not failed,
            "violations": [v.to_dict() for v in found],
        }
        print(json.dumps(report, indent=2))
        return 1 if failed else 0
    if found:
        rows = [[v.column or "(table)", v.rule, str(v.count), v.severity, v.detail] for v in found]
        table(["column", "rule", "count", "severity", "detail"], rows)
    errors = sum(v.severity == "error" for v in found)
    warnings = len(found) - errors
    where = f"{opts.data} ({len(frame)} rows) against {opts.schema}"
    if failed:
        echo(f"{_plural(errors, 'violation')}{_also(warnings)}: {where}", fg="red")
    else:
        echo(f"no violations{_also(warnings)}: {where}", fg="green")
    return 1 if failed else 0


@command(
    "drift",
    arg("reference", metavar="REFERENCE", help=f"the baseline: {_DATA}"),
    arg("current", metavar="CURRENT", help="the data to compare with it"),
    arg("--columns", metavar="A,B", help="only these columns (default: every reference column)"),
    arg("--psi", type=float, default=0.2, metavar="X", help="PSI threshold (default 0.2)"),
    arg("--p-value", type=float, default=0.01, metavar="P", help="test level (default 0.01)"),
    arg(
        "--min-samples",
        type=int,
        default=30,
        metavar="N",
        help="fewer values on a side is inconclusive (default 30)",
    ),
    arg("--json", dest="as_json", action="store_true", help="JSON for machines"),
    help="per-column drift between two datasets (PSI, KS, Wasserstein; chi-squared, JS)",
)
def drift_cmd(opts: Namespace) -> int:
    """Compare CURRENT with REFERENCE column by column: numbers by PSI over the reference's
    deciles, the Kolmogorov–Smirnov test and the Wasserstein distance; categories by PSI, the
    chi-squared test and the Jensen–Shannon distance. Exit 0 when every compared column is
    stable, 1 when one drifted or has too few values to tell."""
    from conveyor.gates import tables
    from conveyor.stats import drift, frames

    columns = None
    if opts.columns is not None:
        columns = [c.strip() for c in opts.columns.split(",") if c.strip()]
        if not columns:
            raise UsageError("--columns needs at least one column name")
    if not 0 < opts.p_value < 1 or opts.psi < 0 or opts.min_samples < 2:
        raise UsageError("--p-value must be in (0, 1), --psi >= 0, --min-samples >= 2")
    rules = drift.DriftRules(
        psi_threshold=opts.psi, p_value=opts.p_value, min_samples=opts.min_samples
    )
    reference = tables.read_table(opts.reference)
    current = tables.read_table(opts.current)
    results = frames.compare(reference, current, columns=columns, rules=rules)
    failed = any(r.verdict in ("drifted", "inconclusive") for r in results)
    if opts.as_json:
        report = {
            "reference": opts.reference,
            "current": opts.current,
            "rules": {k: getattr(rules, k) for k in rules.__dataclass_fields__},
            "columns": [r.to_dict() for r in results],
        }
        print(json.dumps(report, indent=2))
        return 1 if failed else 0
    headers = ["column", "kind", "values", "psi", "p-value", "effect", "verdict", "why"]
    table(headers, [_drift_row(r) for r in results])
    counts = {v: sum(r.verdict == v for r in results) for v in ("drifted", "inconclusive")}
    compared = sum(r.verdict != "skipped" for r in results)
    summary = f"{counts['drifted']} of {compared} columns drifted"
    if counts["inconclusive"]:
        summary += f", {counts['inconclusive']} inconclusive"
    echo(summary, fg="red" if failed else "green")
    return 1 if failed else 0


def _drift_row(result: ColumnDrift) -> list[str]:
    s = result.statistics
    if result.kind == "numeric" and s.get("ks_p_value") is not None:
        p = f"ks {_g(s['ks_p_value'])}"
        effect = f"D={_g(s['ks_statistic'])}"
        if s.get("wasserstein") is not None:
            effect += f" W={_g(s['wasserstein'])}"
    elif result.kind == "categorical" and s.get("chi2_p_value") is not None:
        p = f"chi2 {_g(s['chi2_p_value'])}"
        effect = f"JS={_g(s['js_distance'])}"
    else:
        p = effect = "-"
    values = f"{result.n_reference}/{result.n_current}" if result.verdict != "skipped" else "-"
    return [
        result.column,
        result.kind,
        values,
        _g(s.get("psi")),
        p,
        effect,
        result.verdict,
        "; ".join(result.reasons) or "-",
    ]


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _also(warnings: int) -> str:
    return f" ({_plural(warnings, 'warning')})" if warnings else ""
