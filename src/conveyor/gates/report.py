"""Gate verdicts as files: ``gates.json`` (machines), ``gates.md`` (people, pull requests) and
``gates.junit.xml`` (CI systems show each gate as a test), and the JUnit counts of a test run.

JUnit mapping: a passing gate is a passing test; a blocking gate that failed, was inconclusive
or could not be evaluated is a ``<failure>`` (an ``<error>`` for the last); a skipped gate is
``<skipped>``; a ``warn`` gate that failed passes, with the warning in ``<system-out>``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple
from xml.etree import ElementTree as ET

from conveyor.foundation import atomic
from conveyor.gates.result import Result

SYMBOL = {"pass": "✅", "fail": "❌", "inconclusive": "❔", "skipped": "⏭️", "error": "⚠️"}


def verdict(results: Sequence[Result]) -> str:
    return "fail" if any(r.blocks for r in results) else "pass"


def to_json(results: Sequence[Result], meta: dict[str, Any]) -> str:
    doc = {**meta, "verdict": verdict(results), "gates": [r.to_dict() for r in results]}
    return json.dumps(doc, indent=2, default=str) + "\n"


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()
        )
    return str(value)


def interval(result: Result) -> str:
    if not result.interval:
        return ""
    low, high = result.interval
    return f"[{low:+.4g}, {high:+.4g}]"


def to_markdown(results: Sequence[Result], meta: dict[str, Any]) -> str:
    overall = verdict(results)
    head = "✅ all blocking gates pass" if overall == "pass" else "❌ a blocking gate failed"
    lines = [f"### Quality gates: {head}", ""]
    if meta.get("candidate"):
        lines += [f"Candidate: {meta['candidate']}", ""]
    lines += [
        "| gate | value | baseline | interval | n | verdict |",
        "|---|---:|---:|---|---:|---|",
    ]
    for r in results:
        mark = SYMBOL.get(r.verdict, "")
        shown = r.shown if r.severity == "block" else f"{r.shown} (warn only)"
        lines.append(
            f"| {_md(r.name)} | {_md(cell(r.value))} | {_md(cell(r.baseline))} | {interval(r)} "
            f"| {'' if r.n is None else r.n} | {mark} {shown} |"
        )
    details = [r for r in results if r.detail or r.notes or r.slices]
    if details:
        lines += ["", "<details><summary>Details</summary>", ""]
        for r in details:
            lines.append(f"- **{_md(r.name)}**: {_md(r.detail)}")
            lines += [f"  - {_md(n)}" for n in r.notes]
            if r.kind == "metric" and r.slices:
                for s in r.slices:
                    lines.append(
                        f"  - slice {_md(str(s.get('slice')))} (n={s.get('n')}): "
                        f"{s.get('verdict')} {_md(str(s.get('detail', '')))}"
                    )
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_junit(results: Sequence[Result], *, suite: str = "conveyor gates") -> str:
    failures = sum(1 for r in results if r.blocks and r.verdict != "error")
    errors = sum(1 for r in results if r.blocks and r.verdict == "error")
    skipped = sum(1 for r in results if r.verdict == "skipped")
    root = ET.Element("testsuites", name=suite, tests=str(len(results)),
                      failures=str(failures), errors=str(errors))  # fmt: skip
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                         failures=str(failures), errors=str(errors), skipped=str(skipped),
                         time="0")  # fmt: skip
    for r in results:
        case = ET.SubElement(node, "testcase", classname=f"gates.{r.kind}", name=r.name, time="0")
        message = f"{r.verdict}: {r.detail}".strip(": ")
        if r.blocks:
            tag = "error" if r.verdict == "error" else "failure"
            ET.SubElement(case, tag, message=message, type=r.verdict).text = _body(r)
        elif r.verdict == "skipped":
            ET.SubElement(case, "skipped", message=message)
        elif r.verdict != "pass":
            ET.SubElement(case, "system-out").text = f"warning: {message}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _body(r: Result) -> str:
    parts = [r.detail, *r.notes]
    if r.value is not None:
        parts.append(f"value: {cell(r.value)}")
    if r.baseline is not None:
        parts.append(f"baseline: {cell(r.baseline)}")
    return "\n".join(p for p in parts if p)


def write(folder: Path, results: Sequence[Result], meta: dict[str, Any]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "gates.json": to_json(results, meta),
        "gates.md": to_markdown(results, meta),
        "gates.junit.xml": to_junit(results),
    }
    written = []
    for name, text in files.items():
        atomic.write_text(folder / name, text)
        written.append(folder / name)
    return written


class Counts(NamedTuple):
    total: int
    passed: int
    failed: int
    errors: int
    skipped: int
    exit_code: int


def junit_counts(xml: str, exit_code: int) -> Counts:
    """The totals of a JUnit XML report (one ``testsuite`` or ``testsuites`` of them)."""
    root = ET.fromstring(xml)
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = failed = errors = skipped = 0
    for s in suites:
        total += int(s.get("tests", 0))
        failed += int(s.get("failures", 0))
        errors += int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    passed = total - failed - errors - skipped
    return Counts(total, passed, failed, errors, skipped, exit_code)
