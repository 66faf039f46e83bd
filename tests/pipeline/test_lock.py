"""conveyor.lock: what is written reads back as the same values, sorted and deterministic."""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any

import pytest

from conveyor.foundation.errors import ConfigError, ConveyorError
from conveyor.pipeline import lock
from conveyor.pipeline.lock import Entry
from conveyor.pipeline.stage import Meta

H1 = "1f" * 32
H2 = "ab" * 32
TREE = "cd" * 32 + ".tree"

TRICKY: dict[str, Any] = {
    "lr": 1e-05,
    "tiny": -2.5e-10,
    "big": 1e20,
    "one_float": 1.0,
    "one_int": 1,
    "negative": -3,
    "huge_int": 2**70,
    "on": True,
    "off": False,
    "nothing": None,
    "yes_string": "yes",
    "no_string": "No",
    "one_string": "1",
    "float_string": "1.0",
    "exp_string": "1e-5",
    "null_string": "null",
    "tilde": "~",
    "empty": "",
    "spaces": "  padded  ",
    "colon": "a: b",
    "hash": "# not a comment",
    "quotes": 'it\'s "quoted"',
    "newline": "two\nlines",
    "tab": "a\tb",
    "unicode": "naïve café",
    "emoji": "🚀 launch",
    "list": [1, "two", 3.5, None, True, [4]],
    "empty_list": [],
    "empty_map": {},
    "nested": {"b": {"c": [1, 2]}, "a": "x", "yes": "no", "1": 1},
    "inf": float("inf"),
    "neg_inf": float("-inf"),
    "date": datetime.date(2024, 1, 2),
}


def entry(**kw: Any) -> Entry:
    base: dict[str, Any] = {
        "cmd": ("python train.py",),
        "deps": {"data.csv": Meta(H1, 10, 1)},
        "params": {},
        "outs": {"model.pkl": Meta(H2, 20, 1)},
    }
    base.update(kw)
    return Entry(**base)


def round_trip(tmp_path: Path, entries: dict[str, Entry]) -> dict[str, Entry]:
    """Save, then read back through YAML; the JSON copy that load() prefers must agree."""
    lock.save(tmp_path, entries)
    from_yaml = lock.parse((tmp_path / lock.FILE).read_text(), lock.FILE)
    from_copy = lock.load(tmp_path)
    assert _same(from_copy, from_yaml)
    return from_yaml


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to itself."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


def test_no_lock_reads_as_empty(tmp_path: Path) -> None:
    assert lock.load(tmp_path) == {}


def test_empty_lock_round_trips(tmp_path: Path) -> None:
    assert round_trip(tmp_path, {}) == {}
    assert "stages: {}" in (tmp_path / "conveyor.lock").read_text()


def test_round_trip_of_a_string_and_a_list_cmd(tmp_path: Path) -> None:
    entries = {
        "one": entry(cmd=("python train.py --lr 0.1",)),
        "many": entry(cmd=("python prep.py", "- starts with a dash", "echo 'a: b' # c")),
    }
    back = round_trip(tmp_path, entries)
    assert back == entries
    assert back["one"].cmd == ("python train.py --lr 0.1",)


def test_round_trip_of_deps_and_outs(tmp_path: Path) -> None:
    e = entry(
        deps={"data/raw": Meta(TREE, 12345, 17), "z.csv": Meta(H1, 0, 1)},
        outs={"model dir/m.pkl": Meta(H2, 2**40, 1), "-odd.txt": Meta(H1, 1, 1)},
    )
    back = round_trip(tmp_path, {"train": e})
    assert back == {"train": e}
    assert back["train"].deps["data/raw"].is_tree
    assert back["train"].deps["data/raw"].oid == "cd" * 32


def test_round_trip_of_param_values_of_every_yaml_type(tmp_path: Path) -> None:
    e = entry(params={"params.yaml": dict(TRICKY)})
    back = round_trip(tmp_path, {"train": e})["train"].params["params.yaml"]
    assert back.keys() == TRICKY.keys()
    for key, value in TRICKY.items():
        assert back[key] == value, key
        assert type(back[key]) is type(value), key


def test_round_trip_of_nan(tmp_path: Path) -> None:
    back = round_trip(tmp_path, {"s": entry(params={"params.yaml": {"x": float("nan")}})})
    assert math.isnan(back["s"].params["params.yaml"]["x"])


def test_floats_are_written_so_yaml_reads_floats(tmp_path: Path) -> None:
    lock.save(tmp_path, {"s": entry(params={"params.yaml": {"lr": 1e-05}})})
    text = (tmp_path / "conveyor.lock").read_text()
    assert "lr: 1.0e-05\n" in text


def test_tricky_keys_stage_names_and_files_round_trip(tmp_path: Path) -> None:
    names = ["train@lr-0.1", "train@1", "yes", "null", "+1", ",x", "=", "a b", "@x", "Train.v2"]
    params_files = {"conf/other.yaml": {"true": 1, "0": 2, "a:b": 3}, "params.yaml": {"on": 4}}
    entries = {n: entry(params=params_files, cmd=(n,)) for n in names}
    back = round_trip(tmp_path, entries)
    assert back == entries
    assert all(type(k) is str for k in back)


def test_stages_deps_outs_and_params_are_sorted(tmp_path: Path) -> None:
    e = entry(
        deps={"b.csv": Meta(H1, 1, 1), "a.csv": Meta(H2, 2, 1)},
        outs={"z.pkl": Meta(H1, 1, 1), "m.pkl": Meta(H2, 1, 1)},
        params={"z.yaml": {"k": 1}, "params.yaml": {"train.lr": 0.1, "seed": 1, "a.b": 2}},
    )
    text = lock.dump({"train": e, "prepare": entry()})
    assert text.index("  prepare:") < text.index("  train:")
    train = text[text.index("  train:") :]
    assert train.index("path: a.csv") < train.index("path: b.csv")
    assert train.index("path: m.pkl") < train.index("path: z.pkl")
    assert train.index("a.b: 2") < train.index("seed: 1") < train.index("train.lr: 0.1")
    assert train.index("params.yaml:") < train.index("z.yaml:")


def test_output_does_not_depend_on_insertion_order() -> None:
    def build(reverse: bool) -> dict[str, Entry]:
        def order(d: dict[str, Any]) -> dict[str, Any]:
            items = list(d.items())
            return dict(reversed(items) if reverse else items)

        e = entry(
            deps=order({"a": Meta(H1, 1, 1), "b": Meta(H2, 2, 1)}),
            outs=order({"c": Meta(H1, 1, 1), "d": Meta(H2, 2, 1)}),
            params=order(
                {
                    "params.yaml": order({"x": 1, "y": order({"p": 1, "q": [1, 2]})}),
                    "o.yaml": order({"k": 2}),
                }
            ),
        )
        return order({"s1": e, "s2": entry()})

    assert lock.dump(build(False)) == lock.dump(build(True))


def test_dump_layout(tmp_path: Path) -> None:
    e = entry(params={"params.yaml": {"train.lr": 0.1}})
    assert lock.dump({"train": e}) == (
        lock.HEADER + "schema: 1\n"
        "stages:\n"
        "  train:\n"
        "    cmd: python train.py\n"
        "    deps:\n"
        "      - path: data.csv\n"
        f"        hash: {H1}\n"
        "        size: 10\n"
        "        nfiles: 1\n"
        "    outs:\n"
        "      - path: model.pkl\n"
        f"        hash: {H2}\n"
        "        size: 20\n"
        "        nfiles: 1\n"
        "    params:\n"
        "      params.yaml:\n"
        "        train.lr: 0.1\n"
    )


def test_an_entry_without_deps_outs_or_params(tmp_path: Path) -> None:
    e = Entry(("echo hi",), {}, {}, {})
    assert round_trip(tmp_path, {"hello": e}) == {"hello": e}


def test_a_hand_written_lock_with_a_list_cmd_and_empty_params(tmp_path: Path) -> None:
    (tmp_path / "conveyor.lock").write_text(
        "schema: 1\nstages:\n  s:\n    cmd: [a, b]\n    params:\n      params.yaml:\n"
    )
    assert lock.load(tmp_path) == {"s": Entry(("a", "b"), {}, {"params.yaml": {}}, {})}


@pytest.mark.parametrize(
    "text",
    [
        "schema: 1\nstages:\n  s:\n    deps: []\n",  # no cmd
        "schema: 1\nstages:\n  s:\n    cmd: x\n    deps:\n      - path: a\n        hash: h\n",
        "schema: 1\nstages:\n  s:\n    cmd: x\n    outs:\n      - path: a\n        hash: h\n"
        "        size: big\n        nfiles: 1\n",
        "schema: 1\nstages: [a, b]\n",
        "- just\n- a list\n",
        "schema: 1\nstages:\n  s:\n    cmd: x\n    deps: 3\n",
    ],
)
def test_a_malformed_lock_is_a_config_error_with_a_hint(tmp_path: Path, text: str) -> None:
    (tmp_path / "conveyor.lock").write_text(text)
    with pytest.raises(ConfigError) as info:
        lock.load(tmp_path)
    assert info.value.message.startswith("conveyor.lock is malformed")
    assert info.value.hint is not None and "git checkout conveyor.lock" in info.value.hint


def test_a_merge_conflict_in_the_lock_names_the_line_and_hints(tmp_path: Path) -> None:
    text = lock.dump({"s": entry()})
    conflicted = text.replace("    cmd: python train.py\n", "<<<<<<< HEAD\n    cmd: a\n=======\n")
    (tmp_path / "conveyor.lock").write_text(conflicted)
    with pytest.raises(ConfigError) as info:
        lock.load(tmp_path)
    assert info.value.message.startswith("conveyor.lock:")
    assert "not valid YAML" in info.value.message
    assert info.value.hint is not None and "git checkout conveyor.lock" in info.value.hint


def test_save_replaces_the_whole_file(tmp_path: Path) -> None:
    lock.save(tmp_path, {"a": entry(), "b": entry()})
    lock.save(tmp_path, {"b": entry(cmd=("new",))})
    assert lock.load(tmp_path) == {"b": entry(cmd=("new",))}


def test_the_json_copy_is_used_only_for_the_same_text(tmp_path: Path) -> None:
    lock.save(tmp_path, {"a": entry()})
    copy = tmp_path / ".conveyor" / "cache" / "lock.json"
    assert copy.exists()
    # Another writer (git checkout, a merge) changes the lock: the copy must not be believed.
    other = lock.dump({"b": entry(cmd=("other",))})
    (tmp_path / lock.FILE).write_text(other)
    assert set(lock.load(tmp_path)) == {"b"}
    assert lock.load(tmp_path)["b"].cmd == ("other",)


def test_a_corrupt_json_copy_is_ignored(tmp_path: Path) -> None:
    lock.save(tmp_path, {"a": entry()})
    copy = tmp_path / ".conveyor" / "cache" / "lock.json"
    for junk in (b"", b"[1, 2]", b'{"key": 1}', b"\xff\x00"):
        copy.write_bytes(junk)
        assert lock.load(tmp_path) == {"a": entry()}


@pytest.mark.parametrize("out", [".git/hooks/post-checkout", "conveyor.yaml", "x.cvy", "../x"])
def test_a_lock_naming_an_out_conveyor_must_not_write_is_refused(out: str) -> None:
    text = (
        "schema: 1\nstages:\n  s:\n    cmd: 'true'\n    outs:\n"
        f"      - path: {out}\n        hash: {H1}\n        size: 1\n        nfiles: 1\n"
    )
    with pytest.raises(ConveyorError) as info:
        lock.parse(text, "conveyor.lock")
    assert info.value.exit_code == 2
    assert f"conveyor.lock:5: stage 's': out {out}" in info.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("hash", ".nan"), ("hash", "12"), ("hash", "[a, b]"), ("hash", "abc"), ("size", "-1")],
)
def test_a_lock_out_of_the_wrong_type_is_refused_for_every_command(
    tmp_path: Path, field: str, value: str
) -> None:
    fields = {"hash": H1, "size": "1", "nfiles": "1", field: value}
    text = "schema: 1\nstages:\n  s:\n    cmd: x\n    outs:\n      - path: out\n" + "".join(
        f"        {k}: {v}\n" for k, v in fields.items()
    )
    (tmp_path / "conveyor.lock").write_text(text)
    with pytest.raises(ConfigError, match=r"conveyor\.lock is malformed.*'out' has"):
        lock.load(tmp_path)
