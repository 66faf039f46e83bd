from __future__ import annotations

import doctest
import math
from collections.abc import Mapping
from typing import Any

import pytest

from conveyor.foundation.errors import ConfigError
from conveyor.tracking import query
from conveyor.tracking.query import (
    MISSING,
    field_value,
    parse_filter,
    parse_sort,
    sort_runs,
)

RUN: dict[str, Any] = {
    "id": "a1b2c3",
    "name": "baseline-1",
    "status": "finished",
    "started": 100.0,
    "ended": None,
    "duration": None,
    "git.commit": "3f2a9c",
    "git.branch": "feature/x",
    "params": {
        "train.C": "0.5",
        "train.n": 10,
        "other.yaml:train.C": 2,
        "model.kind": "resnet",
        "flag": True,
        "text_flag": "false",
        "version": "10",
        "layers": [64, 32],
    },
    "metrics": {"eval.auc": 0.93, "metrics/train.json:loss": 0.125, "tiny": 1e-6},
    "tags": {"owner": "ann", "note": "Hello World"},
}


def matches(text: str, run: Mapping[str, Any] = RUN) -> bool:
    return parse_filter(text)(run)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.eval.auc = 0.93", True),
        ("metrics.eval.auc == 0.93", True),
        ("metrics.eval.auc != 0.93", False),
        ("metrics.eval.auc != 0.5", True),
        ("metrics.eval.auc < 0.93", False),
        ("metrics.eval.auc <= 0.93", True),
        ("metrics.eval.auc > 0.9", True),
        ("metrics.eval.auc >= 0.94", False),
        ("metrics.eval.auc>0.9", True),
        ("params.train.n = 10.0", True),
        ("metrics.tiny < 1e-5", True),
        ("metrics.tiny > -1", True),
        ("metrics.tiny > .5", False),
        ("started >= 1E2", True),
    ],
)
def test_every_comparison_operator(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.train.C = 0.5", True),  # stored as the string "0.5"
        ("params.train.C > 0.4", True),
        ("params.train.C < 0.4", False),
        ("params.train.C = .50", True),
        ("metrics.eval.auc = '0.93'", True),  # quoted number against a float
        ("params.version > 9", True),  # as numbers 10 > 9
        ("params.version > '9'", False),  # text against text: "10" < "9"
        ("params.model.kind = 3", False),  # text that is no number never equals one
        ("params.model.kind != 3", True),
        ("params.model.kind > 3", False),
        ("params.layers = 64", False),
        ("params.layers != 64", True),
    ],
)
def test_numbers_against_text(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("params.flag = true", True),
        ("params.flag = TRUE", True),
        ("params.flag != false", True),
        ("params.text_flag = false", True),  # "false" stored as text
        ("params.flag = 1", False),  # a bool is not a number
        ("params.flag = 'true'", True),
    ],
)
def test_booleans(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status = finished", True),
        ("status = 'finished'", True),
        ('status = "finished"', True),
        ("status = failed", False),
        ("git.branch = feature/x", True),
        ("git.commit = 3f2a9c", True),  # starts like a number, is a word
        ("name = baseline-1", True),
        ("id = a1b2c3", True),
        ("tags.note = 'Hello World'", True),
    ],
)
def test_bare_words_and_quoted_strings(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name ~ line", True),  # no wildcard: substring
        ("name ~ 'base*'", True),
        ("name ~ 'line*'", False),  # a glob matches the whole value
        ("name ~ 'baseline-?'", True),
        ("name ~ 'baseline-[0-9]'", True),
        ("tags.note ~ hello", False),  # case matters
        ("params.train.C ~ 0.5", True),
        ("params.train.n ~ 1", True),  # numbers match as their text
        ("params.flag ~ tru", True),
        ("tags.missing ~ 'x*'", False),
        ("params.layers ~ 64", False),
    ],
)
def test_match_operator(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status in (finished, failed)", True),
        ("status in ('running')", False),
        ("status not in (running, failed)", True),
        ("status NOT IN (finished)", False),
        ("params.train.C in (0.1, 0.5)", True),
        ("params.train.C in ('0.5')", True),
        ("tags.missing in (a, b)", False),
        ("tags.missing not in (a, b)", False),  # as SQL: a missing value is in no list, nor out
    ],
)
def test_in_lists(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tags.missing is null", True),
        ("tags.missing is not null", False),
        ("ended is null", True),  # present but None
        ("duration IS NULL", True),
        ("tags.owner is null", False),
        ("tags.owner is not null", True),
        ("metrics.nope is null", True),
    ],
)
def test_is_null(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "tags.missing = x",
        "tags.missing != x",
        "metrics.missing < 1",
        "metrics.missing >= 1",
        "ended > 0",
        "ended != 0",
        "tags.missing ~ x",
    ],
)
def test_missing_or_null_fields_never_compare(text: str) -> None:
    assert matches(text) is False
    assert matches(f"not ({text})") is True


def test_a_run_without_tables_or_attributes() -> None:
    assert matches("metrics.auc is null", {}) is True
    assert matches("status != finished", {}) is False
    assert matches("metrics.auc > 0", {"metrics": None}) is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status = failed or status = finished and tags.owner = ann", True),
        ("status = finished or status = failed and tags.owner = teammate", True),  # and binds first
        ("(status = finished or status = failed) and tags.owner = teammate", False),
        ("not status = failed and tags.owner = ann", True),
        ("not (status = finished and tags.owner = teammate)", True),
        ("not not status = finished", True),
        ("NOT status = finished OR tags.owner = ann", True),
        ("((status = finished))", True),
        ("status = finished and (tags.owner = teammate or (metrics.eval.auc > 0.9))", True),
        ("status = finished AND tags.owner = teammate", False),
    ],
)
def test_and_or_not_and_parentheses(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_short_forms_and_backticks() -> None:
    assert matches("m.eval.auc > 0.9 and p.train.n = 10 and t.owner = ann")
    assert matches("metrics.`metrics/train.json:loss` = 0.125")
    assert matches("p.`other.yaml:train.C` = 2")
    assert matches("t.`note` ~ World")
    run = {"metrics": {"a b": 1.0, "x(y)": 2.0}, "tags": {"and": "yes"}}
    assert matches("metrics.`a b` = 1 and metrics.`x(y)` = 2", run)
    assert matches("tags.and = yes", run)  # a keyword inside a field is a name


def test_the_other_spelling_of_a_metric_or_param_name() -> None:
    # ARCHITECTURE.md: eval.auc is auc in metrics/eval.json; "metrics/eval.json:auc" always works.
    assert matches("metrics.`metrics/eval.json:auc` = 0.93")
    assert matches("metrics.train.loss = 0.125")
    assert matches("params.`params.yaml:train.n` = 10")
    ambiguous = {"metrics": {"a/eval.json:auc": 1.0, "b/eval.json:auc": 2.0}}
    assert field_value(ambiguous, "metrics.eval.auc") is MISSING
    assert field_value({"params": {"params.yaml:lr": 0.1}}, "params.lr") == 0.1


def test_field_value() -> None:
    assert field_value(RUN, "metrics.eval.auc") == 0.93
    assert field_value(RUN, "m.eval.auc") == 0.93
    assert field_value(RUN, "params.train.C") == "0.5"
    assert field_value(RUN, "tags.owner") == "ann"
    assert field_value(RUN, "status") == "finished"
    assert field_value(RUN, "git.branch") == "feature/x"
    assert field_value(RUN, "ended") is None
    assert field_value(RUN, "tags.nope") is MISSING
    assert field_value({}, "duration") is MISSING
    assert repr(MISSING) == "MISSING"
    with pytest.raises(ConfigError) as info:
        field_value(RUN, "metric.auc")
    assert info.value.hint == "did you mean 'metrics.auc'?"


def test_a_filter_is_parsed_once_and_reused() -> None:
    f = parse_filter("metrics.auc > 0.5")
    assert [f({"metrics": {"auc": a}}) for a in (0.1, 0.9, 0.5)] == [False, True, False]
    assert repr(f) == "Filter('metrics.auc > 0.5')"
    assert f.text == "metrics.auc > 0.5"


def test_the_module_examples_run() -> None:
    assert doctest.testmod(query).failed == 0


# Sorting


def test_parse_sort() -> None:
    assert parse_sort("metrics.auc") == [("metrics.auc", False)]
    assert parse_sort("-metrics.auc") == [("metrics.auc", True)]
    assert parse_sort("+m.auc") == [("metrics.auc", False)]
    assert parse_sort("metrics.auc desc, params.train.C") == [
        ("metrics.auc", True),
        ("params.train.C", False),
    ]
    assert parse_sort(" t.x ASC ,started DESC,- duration") == [
        ("tags.x", False),
        ("started", True),
        ("duration", True),
    ]
    assert parse_sort("-m.`metrics/eval.json:auc`, m.`a b`") == [
        ("metrics.metrics/eval.json:auc", True),
        ("metrics.`a b`", False),
    ]


def test_sort_fields_round_trip_through_field_value() -> None:
    run = {"metrics": {"a b": 1.0, "metrics/eval.json:auc": 2.0}}
    fields = [f for f, _ in parse_sort("m.`a b`, m.`metrics/eval.json:auc`")]
    assert [field_value(run, f) for f in fields] == [1.0, 2.0]


def runs(*aucs: Any) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for i, auc in enumerate(aucs):
        metrics = {} if auc is MISSING else {"auc": auc}
        out.append({"id": f"r{i}", "metrics": metrics, "params": {}})
    return out


def ids(sorted_runs: list[Mapping[str, Any]]) -> list[str]:
    return [r["id"] for r in sorted_runs]


def test_sort_ascending_and_descending() -> None:
    rs = runs(0.5, 0.9, 0.1)
    assert ids(sort_runs(rs, [("metrics.auc", False)])) == ["r2", "r0", "r1"]
    assert ids(sort_runs(rs, [("metrics.auc", True)])) == ["r1", "r0", "r2"]
    assert ids(rs) == ["r0", "r1", "r2"]  # the input is left alone


def test_missing_values_sort_last_whatever_the_direction() -> None:
    rs = runs(MISSING, 0.5, None, 0.9, math.nan)
    assert ids(sort_runs(rs, parse_sort("metrics.auc"))) == ["r1", "r3", "r0", "r2", "r4"]
    assert ids(sort_runs(rs, parse_sort("-metrics.auc"))) == ["r3", "r1", "r0", "r2", "r4"]


def test_sort_is_stable() -> None:
    rs = runs(0.5, 0.9, 0.5, 0.9, 0.5)
    assert ids(sort_runs(rs, [("metrics.auc", False)])) == ["r0", "r2", "r4", "r1", "r3"]
    assert ids(sort_runs(rs, [("metrics.auc", True)])) == ["r1", "r3", "r0", "r2", "r4"]
    assert ids(sort_runs(rs, [])) == ids(rs)


def test_sort_by_several_keys() -> None:
    rs: list[Mapping[str, Any]] = [
        {"id": "a", "status": "finished", "metrics": {"auc": 0.7}},
        {"id": "b", "status": "failed", "metrics": {"auc": 0.9}},
        {"id": "c", "status": "finished", "metrics": {"auc": 0.8}},
        {"id": "d", "status": "failed", "metrics": {}},
        {"id": "e", "metrics": {"auc": 0.1}},
        {"id": "f", "status": "finished", "metrics": {"auc": 0.8}},
    ]
    keys = parse_sort("status, -metrics.auc")
    assert ids(sort_runs(rs, keys)) == ["b", "d", "c", "f", "a", "e"]
    assert ids(sort_runs(rs, parse_sort("-status, m.auc"))) == ["a", "c", "f", "b", "d", "e"]


def test_sort_compares_numeric_text_as_numbers_and_survives_mixed_types() -> None:
    values = ["10", 9, "0.5", True, "abc", [1], 2.5]
    rs = [{"id": str(i), "params": {"x": v}} for i, v in enumerate(values)]
    # numbers (and text that reads as one) first, then booleans, text, anything else
    assert ids(sort_runs(rs, parse_sort("params.x"))) == ["2", "6", "1", "0", "3", "4", "5"]


# Errors


def error(text: str, parse: Any = parse_filter) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value


def test_error_points_at_the_column_with_a_caret() -> None:
    e = error("metrics.auc > ")
    assert e.message == (
        "--filter: expected a value after '>' at column 15:\n  metrics.auc > \n" + " " * 16 + "^"
    )
    assert (
        e.hint == "a value is a number, 'text', true, false or a bare word; quote words like 'and'"
    )
    assert str(e).endswith("\n  hint: " + e.hint)


def test_caret_sits_under_the_offending_token() -> None:
    e = error("m.auc > 1 and metric.loss < 2")
    excerpt, caret = e.message.splitlines()[1:]
    assert excerpt[caret.index("^")] == "m" and caret.index("^") == 2 + 14
    assert e.message.startswith("--filter: unknown field 'metric.loss' at column 15:")


FIELD_HINT = (
    "a field is metrics.<name>, params.<name>, tags.<name> or "
    "id, name, status, started, ended, duration, git.commit, git.branch"
)
OPERATOR_HINT = "operators are = != < <= > >= ~, 'in (a, b)' and 'is [not] null'"
VALUE_HINT = "a value is a number, 'text', true, false or a bare word; quote words like 'and'"


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        # fields
        ("metric.auc > 1", "unknown field 'metric.auc' at column 1", "did you mean 'metrics.auc'?"),
        ("param.train.C = 1", "unknown field 'param.train.C' at column 1",
         "did you mean 'params.train.C'?"),
        ("tag.owner = ann", "unknown field 'tag.owner' at column 1", "did you mean 'tags.owner'?"),
        ("stauts = x", "unknown field 'stauts' at column 1", "did you mean 'status'?"),
        ("git.comit = x", "unknown field 'git.comit' at column 1", "did you mean 'git.commit'?"),
        ("auc > 1", "unknown field 'auc' at column 1",
         "a metric, param or tag needs its prefix: metrics.auc, params.auc, ..."),
        ("xyz.qqq > 1", "unknown field 'xyz.qqq' at column 1", FIELD_HINT),
        ("m. > 1", "expected a name after 'm.' at column 3", FIELD_HINT),
        ("> 1", "expected a field, found '>' at column 1", FIELD_HINT),
        ("m.x = 1 and", "expected a field after 'and' at column 12", FIELD_HINT),
        ("m.x = 1 or 2 = 2", "expected a field after 'or', found '2' at column 12", FIELD_HINT),
        ("and m.x = 1", "expected a field, found 'and' at column 1", FIELD_HINT),
        # operators
        ("m.auc => 1", "unknown operator '=>' at column 7", "did you mean '>='?"),
        ("m.auc =< 1", "unknown operator '=<' at column 7", "did you mean '<='?"),
        ("m.auc <> 1", "unknown operator '<>' at column 7", "did you mean '!='?"),
        ("m.auc ! 1", "unknown operator '!' at column 7", "did you mean '!='?"),
        ("m.auc =~ x", "unknown operator '=~' at column 7", "did you mean '~'?"),
        ("m.auc >> 1", "unknown operator '>>' at column 7", OPERATOR_HINT),
        ("m.auc", "expected an operator after 'm.auc' at column 6", OPERATOR_HINT),
        ("m.auc 1", "expected an operator after 'm.auc', found '1' at column 7", OPERATOR_HINT),
        ("m.auc not = 1", "expected 'in' after 'not', found '=' at column 11",
         "write 'not FIELD OP VALUE' to negate a comparison"),
        # values
        ("metrics.auc > ", "expected a value after '>' at column 15", VALUE_HINT),
        ("m.auc > )", "expected a value after '>', found ')' at column 9", VALUE_HINT),
        ("m.auc > and", "expected a value after '>', found 'and' at column 9", VALUE_HINT),
        ("name = null", "null is not a value at column 8",
         "write 'FIELD is null' or 'is not null'"),
        ("m.auc is 1", "expected 'null' after 'is', found '1' at column 10",
         "write 'FIELD is null' or 'FIELD is not null'"),
        ("m.auc is not", "expected 'null' after 'not' at column 13",
         "write 'FIELD is null' or 'FIELD is not null'"),
        # in lists
        ("m.auc in 1", "expected '(' after 'in', found '1' at column 10",
         "e.g. status in (finished, failed)"),
        ("m.auc in ()", "expected a value after '(', found ')' at column 11", VALUE_HINT),
        ("m.auc in (1 2)", "expected ',' or ')' after '1', found '2' at column 13",
         "separate the values with ','"),
        ("m.auc in (1, null)", "null is not a value at column 14",
         "write 'FIELD is null' or 'is not null'"),
        ("m.auc in (1", "unclosed '(' at column 10", "add the missing ')'"),
        # parentheses and trailing garbage
        ("(m.auc > 1", "unclosed '(' at column 1", "add the missing ')'"),
        ("((m.auc > 1)", "unclosed '(' at column 1", "add the missing ')'"),
        ("m.auc > 1)", "unmatched ')' at column 10", "remove it, or add the '(' it closes"),
        ("()", "expected a field after '(', found ')' at column 2", FIELD_HINT),
        ("(m.x = 1 m.y = 2)", "expected ')' after '1', found 'm.y' at column 10",
         "join conditions with 'and' or 'or'"),
        ("m.auc > 1 m.x = 2", "unexpected 'm.x' at column 11",
         "join conditions with 'and' or 'or'"),
        ("m.auc > 1 2", "unexpected '2' at column 11", "join conditions with 'and' or 'or'"),
        # characters
        ("m.auc > 1 && m.x = 1", "unexpected character '&' at column 11", "write 'and'"),
        ("m.auc > 1 || m.x = 1", "unexpected character '|' at column 11", "write 'or'"),
        ("name ~ base*", "unexpected character '*' at column 12",
         "quote a glob pattern: name ~ 'base*'"),
        ("name = a;b", "unexpected character ';' at column 9",
         "quote values ('...') and names (`...`) with this character"),
        ("name = 'abc", "unclosed quote at column 8", "add the closing '"),
        ('name = "abc', "unclosed quote at column 8", 'add the closing "'),
        ("m.`abc > 1", "unclosed backtick at column 3", "add the closing `"),
    ],
)  # fmt: skip
def test_filter_errors(text: str, message: str, hint: str) -> None:
    e = error(text)
    assert e.message.splitlines()[0] == f"--filter: {message}:"
    assert e.message.splitlines()[1] == f"  {text}"
    assert e.hint == hint


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_filter_and_sort(text: str) -> None:
    e = error(text)
    assert (e.message, e.hint) == ("--filter: the filter is empty", "e.g. 'metrics.auc > 0.9'")
    e = error(text, parse_sort)
    assert (e.message, e.hint) == ("--sort: the sort is empty", "e.g. '-metrics.auc, name'")


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("metric.auc", "unknown field 'metric.auc' at column 1", "did you mean 'metrics.auc'?"),
        ("-m.auc desc", "direction given twice at column 8", "drop the '-'"),
        ("m.auc m.x", "expected ',' or the end after 'm.auc', found 'm.x' at column 7",
         "separate sort keys with ','"),
        ("m.auc,", "expected a field after ',' at column 7", FIELD_HINT),
        ("m.auc > 1", "expected ',' or the end after 'm.auc', found '>' at column 7",
         "separate sort keys with ','"),
        ("- ,m.x", "expected a field after '-', found ',' at column 3", FIELD_HINT),
    ],
)  # fmt: skip
def test_sort_errors(text: str, message: str, hint: str) -> None:
    e = error(text, parse_sort)
    assert e.message.splitlines()[0] == f"--sort: {message}:"
    assert e.hint == hint


def test_sort_runs_refuses_an_unknown_field() -> None:
    with pytest.raises(ConfigError, match=r"unknown field 'metric\.auc'"):
        sort_runs(runs(0.1), [("metric.auc", False)])
