"""The segment discipline the prediction log and feedback share: a ``.part`` written through its
descriptor and renamed when finished, and readers that take only its complete lines."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from conveyor.monitor import segments
from tests.monitor.killed import killed_after

pytestmark = pytest.mark.timeout(60)


def line(n: int) -> bytes:
    return orjson.dumps({"id": f"r{n}"}) + b"\n"


def ids(data: bytes) -> list[str]:
    return [one["id"] for one in segments.records(data)]


def new_lines(tail: segments.Tail) -> list[str]:
    return [i for _, _, data in tail.read() for i in ids(data)]


@pytest.mark.parametrize("durable", [True, False])
def test_a_killed_writer_leaves_a_part_read_line_by_line(tmp_path: Path, durable: bool) -> None:
    killed_after(
        "from conveyor.monitor import segments\n"
        "s = segments.Segment(Path(sys.argv[1]), records=10**6, seconds=3600.0, "
        f"durable={durable})\n"
        "for i in range(100):\n"
        '    s.write(b\'{"id": "r%d"}\\n\' % i)\n',
        tmp_path,
    )
    (part,) = segments.files(tmp_path)
    assert part.name.endswith(".jsonl.part")
    with part.open("ab") as file:  # what a write cut by the kill would have left
        file.write(b'{"id": "r10')
    assert ids(segments.complete(part, part.read_bytes())) == [f"r{i}" for i in range(100)]
    tail = segments.Tail(tmp_path)
    assert new_lines(tail) == [f"r{i}" for i in range(100)]
    assert new_lines(tail) == []  # the cut line is not taken, nor anything twice
    with part.open("ab") as file:
        file.write(b'0"}\n')
    assert new_lines(tail) == ["r100"]


@pytest.mark.parametrize("durable", [True, False])
def test_finish_renames_the_same_file_whose_lines_are_not_read_again(
    tmp_path: Path, durable: bool
) -> None:
    segment = segments.Segment(tmp_path, records=10, seconds=3600.0, durable=durable)
    segment.write(line(0) + line(1), records=2)
    tail = segments.Tail(tmp_path)
    assert new_lines(tail) == ["r0", "r1"]
    segment.write(line(2))
    inode = segment.part.stat().st_ino
    segment.finish()
    assert [p.name for p in tmp_path.iterdir()] == [segment.path.name]
    assert segment.path.stat().st_ino == inode  # renamed, not copied: no reader sees half
    assert segment.path.read_bytes() == line(0) + line(1) + line(2)
    assert new_lines(tail) == ["r2"]  # read on from where the .part was left
    assert new_lines(tail) == []
    assert tail.offsets == {segment.path.name: segment.path.stat().st_size}


def test_a_failed_write_is_cut_by_abandon_which_counts_what_stays(tmp_path: Path) -> None:
    segment = segments.Segment(tmp_path, records=10, seconds=3600.0)
    segment.write(line(0))
    segment.write(line(1))
    os.write(segment.fd, line(2)[:5])  # a write the disk cut short
    assert segment.abandon() == 2
    assert segment.part.read_bytes() == line(0) + line(1)  # left as .part, whole lines only
    assert segment.fd == -1
    segment.finish()  # after abandon: still a .part, never renamed
    assert segment.part.exists() and not segment.path.exists()


def test_full_by_records_or_age_and_gone_when_removed(tmp_path: Path) -> None:
    segment = segments.Segment(tmp_path, records=2, seconds=3600.0)
    segment.write(line(0))
    assert not segment.full()
    segment.write(line(1))
    assert segment.full()
    old = segments.Segment(tmp_path, records=2, seconds=0.0)
    assert old.full()
    assert old.path.name != segment.path.name  # started in the same second, named apart
    assert not old.gone()
    old.part.unlink()
    assert old.gone()
    old.abandon()
    segment.finish()


def test_hidden_and_other_files_are_no_segments(tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.jsonl.part", ".c.jsonl.123.tmp", ".d.jsonl", "e.txt", "f.part"):
        (tmp_path / name).write_bytes(line(0))
    assert [p.name for p in segments.files(tmp_path)] == ["a.jsonl", "b.jsonl.part"]
    assert segments.files(tmp_path / "missing") == []
    assert list(segments.Tail(tmp_path / "missing").read()) == []


@pytest.mark.parametrize("seed", range(30))
def test_line_lists_give_the_lines_that_lines_gives_whatever_the_piece_size(seed: int) -> None:
    import random

    rng = random.Random(seed)
    parts = [b"\n", b"\r\n", b"\r", b"", b"a", b'{"id":1}', b"xyz" * 5, b"\n\n"]
    data = b"".join(rng.choice(parts) for _ in range(rng.randint(0, 200)))
    expected = [line for _, line in segments.lines(data)]
    for size in (1, 2, 3, 7, 64, 1 << 20):
        pieces = list(segments.line_lists(data, size))
        assert [line for piece in pieces for line in piece] == expected, size
