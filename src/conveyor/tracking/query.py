"""Filtering and sorting runs: the pure core of ``conveyor runs list --filter ... --sort ...``.

A filter is comparisons (``= == != < <= > >= ~``, ``in (...)``, ``is [not] null``) joined by
``not``, ``and``, ``or`` (binding in that order) and parentheses. A field is ``metrics.<name>``,
``params.<name>``, ``tags.<name>`` (or ``m.``, ``p.``, ``t.``) or one of the attributes ``id name
status started ended duration git.commit git.branch``; backticks quote a name with any character:
``metrics.`metrics/eval.json:auc```. A number compared with text that reads as a number compares as
a number. A comparison with a missing (or null) field is false, ``!=`` included, as SQL's NULL;
only ``is null`` matches it. ``~`` is a substring test, or an fnmatch glob when the pattern has
``*``, ``?`` or ``[``. Mistakes raise :class:`ConfigError` pointing at the column.

    >>> f = parse_filter("m.auc >= 0.9 and params.train.C = 0.5 and not status ~ fail")
    >>> f({"status": "finished", "metrics": {"auc": 0.93}, "params": {"train.C": "0.5"}})
    True
    >>> parse_sort("-metrics.auc, p.train.C asc")
    [('metrics.auc', True), ('params.train.C', False)]
"""

from __future__ import annotations

import fnmatch
import functools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

__all__ = ["MISSING", "Filter", "field_value", "parse_filter", "parse_sort", "sort_runs"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: object = _Missing()
"""What :func:`field_value` returns for a field the run does not have."""


def _absent(v: Any) -> bool:
    return v is None or v is MISSING


_PREFIXES = {"metrics": "metrics", "params": "params", "tags": "tags", "m": "metrics"}
_PREFIXES |= {"p": "params", "t": "tags"}
_ATTRIBUTES = ("id", "name", "status", "started", "ended", "duration", "git.commit", "git.branch")
_FIELDS = "a field is metrics.<name>, params.<name>, tags.<name> or " + ", ".join(_ATTRIBUTES)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
_OPERATORS = "operators are = != < <= > >= ~, 'in (a, b)' and 'is [not] null'"
_OP_FIXES = {"=>": ">=", "=<": "<=", "<>": "!=", "!": "!=", "===": "==", "=~": "~", "~=": "~"}
_CHAR_HINTS = {"&": "write 'and'", "|": "write 'or'", "*": "quote a glob pattern: name ~ 'base*'"}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_WORD_CHAR = r"[\w.:/@-]"
_TOKEN = re.compile(
    rf"""\s*(?:(?P<string>'[^']*'|"[^"]*")|(?P<number>{_NUMBER})(?!{_WORD_CHAR}|`)"""
    rf"|(?P<word>(?:`[^`]*`|\w)(?:`[^`]*`|{_WORD_CHAR})*)|(?P<op>[=!<>~]+)"
    r"|(?P<punct>[(),])|(?P<sign>[+-])|(?P<other>\S))"
)
_PREFIX = re.compile(r"((?:`[^`]*`|[^`.])*)\.(.*)", re.DOTALL)  # the first '.' outside backticks
_KEYWORDS = ("and", "or", "not", "in", "is")

_Field = tuple[str, str]  # ("metrics" | "params" | "tags" | "attr", name)
_Predicate = Callable[[Mapping[str, Any]], bool]
_Run = TypeVar("_Run", bound=Mapping[str, Any])


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "number", "word", "op", "sign", "(", ")", ",", "end"
    text: str  # as written
    value: Any  # the text without quotes or backticks, or the number
    pos: int


def _error(label: str, text: str, pos: int, problem: str, hint: str | None) -> ConfigError:
    excerpt = f"\n  {text}\n  {' ' * pos}^"
    return ConfigError(f"{label}: {problem} at column {pos + 1}:{excerpt}", hint=hint)


def _tokenize(text: str, label: str) -> list[_Token]:
    out, pos = [], 0
    while (m := _TOKEN.match(text, pos)) and m.lastgroup:
        kind, raw, start, pos = m.lastgroup, m[m.lastgroup], m.start(m.lastgroup), m.end()
        if kind == "other" and raw in "'\"`":
            problem = f"unclosed {'backtick' if raw == '`' else 'quote'}"
            raise _error(label, text, start, problem, f"add the closing {raw}")
        if kind == "other":
            hint = _CHAR_HINTS.get(
                raw, "quote values ('...') and names (`...`) with this character"
            )
            raise _error(label, text, start, f"unexpected character {raw!r}", hint)
        if kind == "op" and raw not in _COMPARE and raw != "~":
            fix = _OP_FIXES.get(raw)
            hint = f"did you mean {fix!r}?" if fix else _OPERATORS
            raise _error(label, text, start, f"unknown operator {raw!r}", hint)
        value: Any = raw.replace("`", "") if kind == "word" else raw
        if kind == "string":
            value = raw[1:-1]
        elif kind == "number":
            value = int(raw) if raw.lstrip("+-").isdigit() else float(raw)
        out.append(_Token(raw if kind == "punct" else kind, raw, value, start))
    return [*out, _Token("end", "", None, len(text))]


def _field(tok: _Token, text: str, label: str) -> _Field:
    if tok.value in _ATTRIBUTES:
        return ("attr", tok.value)
    m = _PREFIX.fullmatch(tok.text)
    prefix, rest = (m[1].replace("`", ""), m[2].replace("`", "")) if m else ("", tok.value)
    if prefix in _PREFIXES:
        if not rest:
            end = tok.pos + len(tok.text)
            raise _error(label, text, end, f"expected a name after {tok.text!r}", _FIELDS)
        return (_PREFIXES[prefix], rest)
    choices = [*_ATTRIBUTES, *(f"{p}.{rest}" for p in ("metrics", "params", "tags"))]
    hint = did_you_mean(tok.value, choices)
    if hint is None and not m:
        hint = f"a metric, param or tag needs its prefix: metrics.{rest}, params.{rest}, ..."
    raise _error(label, text, tok.pos, f"unknown field {tok.text!r}", hint or _FIELDS)


@functools.lru_cache(maxsize=256)
def _parse_field(text: str) -> _Field:
    tokens = _tokenize(text, "field")
    if tokens[0].kind != "word" or tokens[1].kind != "end":
        raise _error("field", text, tokens[0].pos, f"{text!r} is not a field", _FIELDS)
    return _field(tokens[0], text, "field")


def _lookup(run: Mapping[str, Any], field: _Field) -> Any:
    kind, name = field
    table = run if kind == "attr" else run.get(kind)
    if not isinstance(table, Mapping):
        return MISSING
    if name in table:
        return table[name]
    # The other spelling of the same name (ARCHITECTURE.md, "Names a user types").
    if kind == "params":
        other = name.removeprefix("params.yaml:") if ":" in name else f"params.yaml:{name}"
        return table.get(other, MISSING)
    if kind == "metrics":
        if ":" in name:
            return table.get(_metric_alias(name), MISSING)
        found = [v for k, v in table.items() if ":" in k and _metric_alias(k) == name]
        return found[0] if len(found) == 1 else MISSING
    return MISSING


def _metric_alias(name: str) -> str:
    path, _, key = name.partition(":")
    stem = path.rsplit("/", 1)[-1]
    return f"{stem.rpartition('.')[0] or stem}.{key}"


def field_value(run: Mapping[str, Any], field: str) -> Any:
    """The value of ``field`` in ``run`` ("metrics.auc", "p.train.C", "status"), or MISSING."""
    return _lookup(run, _parse_field(field))


def _as_number(v: Any) -> int | float | None:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and re.fullmatch(_NUMBER, v.strip()):
        return float(v)
    return None


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    return {"true": True, "false": False}.get(v.lower()) if isinstance(v, str) else None


def _compare(a: Any, op: str, b: Any) -> bool:
    if _absent(a):
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        a, b = _as_bool(a), _as_bool(b)
    elif isinstance(a, int | float) or isinstance(b, int | float):
        a, b = _as_number(a), _as_number(b)
    elif not (isinstance(a, str) and isinstance(b, str)):
        a = b = None
    if a is None or b is None:  # not comparable: never equal, never ordered
        return op == "!="
    return _COMPARE[op](a, b)


def _match(a: Any, pattern: str) -> bool:
    if not isinstance(a, str | int | float):
        return False
    s = str(a).lower() if isinstance(a, bool) else str(a)
    return fnmatch.fnmatchcase(s, pattern) if any(c in pattern for c in "*?[") else pattern in s


class _Parser:
    """Recursive descent over the tokens: or > and > not > (...) | condition."""

    def __init__(self, text: str, label: str) -> None:
        self.text, self.label = text, label
        self.tokens, self.i = _tokenize(text, label), 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return self.tokens[self.i - 1]

    def keyword(self, *words: str) -> bool:
        return self.peek().kind == "word" and self.peek().text.lower() in words

    def accept(self, word: str) -> bool:
        found = self.keyword(word)
        if found:
            self.next()
        return found

    def error(self, tok: _Token, problem: str, hint: str | None) -> ConfigError:
        return _error(self.label, self.text, tok.pos, problem, hint)

    def expected(self, what: str, hint: str | None) -> ConfigError:
        tok, where = self.peek(), f" after {self.tokens[self.i - 1].text!r}" if self.i else ""
        found = "" if tok.kind == "end" else f", found {tok.text!r}"
        return self.error(tok, f"expected {what}{where}{found}", hint)

    def parse(self) -> _Predicate:
        if self.peek().kind == "end":
            raise ConfigError("--filter: the filter is empty", hint="e.g. 'metrics.auc > 0.9'")
        predicate, tok = self.any_of(), self.peek()
        if tok.kind == ")":
            raise self.error(tok, "unmatched ')'", "remove it, or add the '(' it closes")
        if tok.kind != "end":
            raise self.error(tok, f"unexpected {tok.text!r}", "join conditions with 'and' or 'or'")
        return predicate

    def any_of(self) -> _Predicate:
        parts = [self.all_of()]
        while self.accept("or"):
            parts.append(self.all_of())
        return parts[0] if len(parts) == 1 else lambda run: any(p(run) for p in parts)

    def all_of(self) -> _Predicate:
        parts = [self.negation()]
        while self.accept("and"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else lambda run: all(p(run) for p in parts)

    def negation(self) -> _Predicate:
        if self.accept("not"):
            inner = self.negation()
            return lambda run: not inner(run)
        if self.peek().kind != "(":
            return self.condition()
        opening = self.next()
        inner = self.any_of()
        self.close(opening, "')'", "join conditions with 'and' or 'or'")
        return inner

    def close(self, opening: _Token, what: str, hint: str) -> None:
        if self.peek().kind == "end":
            raise self.error(opening, "unclosed '('", "add the missing ')'")
        if self.peek().kind != ")":
            raise self.expected(what, hint)
        self.next()

    def field(self) -> _Field:
        if self.peek().kind != "word" or self.keyword(*_KEYWORDS):
            raise self.expected("a field", _FIELDS)
        return _field(self.next(), self.text, self.label)

    def condition(self) -> _Predicate:
        field = self.field()
        if self.accept("is"):
            negate = self.accept("not")
            if not self.accept("null"):
                raise self.expected("'null'", "write 'FIELD is null' or 'FIELD is not null'")
            return lambda run: _absent(_lookup(run, field)) != negate
        negate = self.accept("not")
        if negate or self.keyword("in"):
            return self.membership(field, negate)
        if self.peek().kind != "op":
            raise self.expected("an operator", _OPERATORS)
        op, tok = self.next().text, self.peek()
        value = self.value()
        if op == "~":
            pattern = value if isinstance(value, str) else tok.text
            return lambda run: _match(_lookup(run, field), pattern)
        return lambda run: _compare(_lookup(run, field), op, value)

    def membership(self, field: _Field, negate: bool) -> _Predicate:
        if not self.accept("in"):
            raise self.expected("'in'", "write 'not FIELD OP VALUE' to negate a comparison")
        if self.peek().kind != "(":
            raise self.expected("'('", "e.g. status in (finished, failed)")
        opening, values = self.next(), [self.value()]
        while self.peek().kind == ",":
            self.next()
            values.append(self.value())
        self.close(opening, "',' or ')'", "separate the values with ','")

        def test(run: Mapping[str, Any]) -> bool:
            v = _lookup(run, field)
            return not _absent(v) and negate != any(_compare(v, "=", x) for x in values)

        return test

    def value(self) -> Any:
        tok = self.peek()
        if tok.kind in ("number", "string"):
            return self.next().value
        if tok.kind != "word" or self.keyword(*_KEYWORDS):
            hint = "a value is a number, 'text', true, false or a bare word; quote words like 'and'"
            raise self.expected("a value", hint)
        if self.keyword("null"):
            raise self.error(tok, "null is not a value", "write 'FIELD is null' or 'is not null'")
        self.next()
        return {"true": True, "false": False}.get(tok.text.lower(), tok.value)


class Filter:
    """A parsed filter; call it with a run to test the run. Parse once, call many times."""

    def __init__(self, text: str, predicate: _Predicate) -> None:
        self.text = text
        self._predicate = predicate

    def __call__(self, run: Mapping[str, Any]) -> bool:
        return self._predicate(run)

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"


def parse_filter(text: str) -> Filter:
    """Parse a ``--filter`` string; raise ConfigError naming the column of any mistake."""
    return Filter(text, _Parser(text, "--filter").parse())


def _spelling(field: _Field) -> str:
    kind, name = field
    if re.fullmatch(rf"{_WORD_CHAR}+", name):
        return name if kind == "attr" else f"{kind}.{name}"
    return f"{kind}.`{name}`"


def parse_sort(text: str) -> list[tuple[str, bool]]:
    """Parse a ``--sort`` string into (field, descending) pairs, fields spelt in full."""
    parser, keys = _Parser(text, "--sort"), []
    if parser.peek().kind == "end":
        raise ConfigError("--sort: the sort is empty", hint="e.g. '-metrics.auc, name'")
    while True:
        sign = parser.next().text if parser.peek().kind == "sign" else ""
        field = parser.field()
        descending = sign == "-"
        if parser.keyword("asc", "desc"):
            if sign:
                raise parser.error(parser.peek(), "direction given twice", f"drop the {sign!r}")
            descending = parser.next().text.lower() == "desc"
        keys.append((_spelling(field), descending))
        if parser.peek().kind == "end":
            return keys
        if parser.peek().kind != ",":
            raise parser.expected("',' or the end", "separate sort keys with ','")
        parser.next()


def _rank(v: Any) -> tuple[int, float, str] | None:
    if _absent(v):
        return None
    if isinstance(v, bool):
        return (1, float(v), "")
    number = _as_number(v)
    if number is not None:
        return None if math.isnan(number) else (0, float(number), "")
    return (2, 0.0, v) if isinstance(v, str) else (3, 0.0, repr(v))


def sort_runs(runs: Iterable[_Run], keys: list[tuple[str, bool]]) -> list[_Run]:
    """Sort by each (field, descending) key in turn; runs without a value (or NaN) go last."""
    out = list(runs)
    for name, descending in reversed(keys):  # stable sorts, least significant key first
        field = _parse_field(name)
        ranked = [(_rank(_lookup(run, field)), run) for run in out]
        present = [(r, run) for r, run in ranked if r is not None]
        present.sort(key=lambda pair: pair[0], reverse=descending)
        out = [run for _, run in present] + [run for r, run in ranked if r is None]
    return out
