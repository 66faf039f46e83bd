"""The incremental join: the same counts as :func:`feedback.join` over everything, whatever order
labels and predictions arrive in, reading each line of the segments once."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from conveyor.monitor import feedback, predlog, segments
from conveyor.monitor.joiner import Joiner, Running

pytestmark = pytest.mark.timeout(60)

SINCE = 1_000.0
LATE = 60.0  # late_after: short, so that some labels are late

OUTPUTS: list[Any] = [1, 0, [1], [[0]], [1, 0], [[1, 0]], {"p": 1}, "1", 1.0, True, "cat", []]
LABELS: list[Any] = [0, 1, "1", "cat", 1.0, True]


def made(rng: random.Random) -> tuple[list[dict[str, Any]], list[feedback.Label]]:
    """Predictions and labels with every case the join tells apart: ids answered by several
    versions, twice by one (a retry), before ``SINCE`` only or on both sides of it; labels of
    ids never answered, twice for one id (at the same instant too), late ones."""
    ids = [f"r{i}" for i in range(rng.randint(1, 25))]
    predictions = []
    for _ in range(rng.randint(0, 50)):
        ts = rng.choice([SINCE - 5, SINCE, SINCE + rng.choice([1.0, 2.0, rng.uniform(0, 50)])])
        version = rng.choice(["1", "2", 3])  # a number is joined as its text
        one = predlog.record(rng.choice(ids), "clf", version, "infer", [[0.5]], None)
        predictions.append({**one, "ts": ts, "outputs": rng.choice(OUTPUTS)})
    labels = []
    for _ in range(rng.randint(0, 40)):
        rid = rng.choice([*ids, "never-answered", "another"])
        ts = rng.choice([SINCE + 10, SINCE + 10, SINCE + rng.uniform(0, 4 * LATE)])
        labels.append(feedback.label(rid, rng.choice(LABELS), ts))
    return predictions, labels


def joined(predictions: list[dict[str, Any]], labels: list[feedback.Label], since: Any) -> Any:
    return feedback.join(predictions, labels, late_after=LATE, since=since)


@pytest.mark.parametrize("since", [SINCE, None])
@pytest.mark.parametrize("seed", range(150))
def test_running_is_join_in_any_order_of_arrival(seed: int, since: float | None) -> None:
    """Each record is fed with its place in the log; at every moment the counts are the join
    of what was fed so far, taken in the order of the log."""
    rng = random.Random(seed)
    predictions, labels = made(rng)
    arrivals = [("p", i) for i in range(len(predictions))] + [("l", i) for i in range(len(labels))]
    rng.shuffle(arrivals)
    running = Running(since=since, late_after=LATE)
    fed: dict[str, set[int]] = {"p": set(), "l": set()}
    for n, (kind, i) in enumerate(arrivals):
        where = ("0.jsonl", i)
        if kind == "p":
            one = predictions[i]
            value = feedback.single(one["outputs"])
            running.prediction(one["id"], one["ts"], str(one["version"]), value, where)
        else:
            running.label(labels[i]["id"], labels[i]["ts"], labels[i]["label"], where)
        fed[kind].add(i)
        if n % 7 == 0 or n == len(arrivals) - 1:
            so_far = (
                [predictions[j] for j in sorted(fed["p"])],
                [labels[j] for j in sorted(fed["l"])],
            )
            assert running.result() == joined(*so_far, since)
    assert running.result() == joined(predictions, labels, since)


def test_the_earliest_label_wins_and_the_first_read_among_equals() -> None:
    running = Running()
    running.prediction("a", 1.0, "1", 1, ("b.jsonl", 0))
    running.label("a", 5.0, 0, ("b.jsonl", 3))
    running.label("a", 5.0, 1, ("a.jsonl", 9))  # read first by a full read: it wins
    assert running.result().tally(1).correct == 1
    running.label("a", 4.0, 0, ("c.jsonl", 0))  # received earlier: wins though read last
    result = running.result()
    assert result.tally(1) == feedback.Tally(1, 0) and result.duplicates == 2
    running.prediction("a", 2.0, "1", 0, ("a.jsonl", 0))  # the first of version 1 read
    assert running.result().tally(1) == feedback.Tally(1, 1)


class Log:
    """Segments written as the server and ``conveyor feedback add`` write them: ``.part`` files
    growing by lines, now and then with a line cut halfway that is completed later, renamed
    when finished; and finished segments at once. Names start at random seconds, so the order
    a full read takes is not the order of writing."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.rng = rng
        self.predictions = root / "predictions"
        self.folders = {
            "p": predlog.model_folder(self.predictions, "clf"),
            "l": root / "feedback",
        }
        for folder in self.folders.values():
            folder.mkdir(parents=True)
        self.open: dict[Path, bytes] = {}  # .part -> the rest of a line cut halfway
        self.numbers = iter(range(1, 100_000))

    def step(self, lines: dict[str, list[bytes]]) -> None:
        rng = self.rng
        kind = rng.choice(["p", "l"])
        todo = rng.random()
        if todo < 0.15 or not self.open:
            self._start(kind, lines)
            return
        part = rng.choice(sorted(self.open))
        kind = "p" if part.parent == self.folders["p"] else "l"
        rest = self.open[part]
        if todo < 0.3 and not rest:
            part.rename(part.with_name(part.name.removesuffix(segments.PART)))
            del self.open[part]
            return
        data = rest + b"".join(lines[kind].pop() for _ in range(min(3, len(lines[kind]))))
        if rng.random() < 0.3 and lines[kind]:
            cut = lines[kind].pop()
            at = rng.randint(1, len(cut) - 1)
            data, self.open[part] = data + cut[:at], cut[at:]
        else:
            self.open[part] = b""
        with part.open("ab") as file:
            file.write(data)

    def _start(self, kind: str, lines: dict[str, list[bytes]]) -> None:
        stamp = SINCE + self.rng.randint(0, 30)
        name = predlog.segment_name(stamp, 1, next(self.numbers))
        if self.rng.random() < 0.3:  # written whole and renamed into place
            batch = [lines[kind].pop() for _ in range(min(4, len(lines[kind])))]
            (self.folders[kind] / name).write_bytes(b"".join(batch))
        else:
            part = self.folders[kind] / (name + segments.PART)
            part.touch()
            self.open[part] = b""

    def finish(self) -> None:
        for part, rest in self.open.items():
            with part.open("ab") as file:
                file.write(rest)
            part.rename(part.with_name(part.name.removesuffix(segments.PART)))
        self.open.clear()


@pytest.mark.parametrize("seed", range(40))
def test_joiner_over_files_is_join_of_a_full_read(tmp_path: Path, seed: int) -> None:
    """Segments grow, get lines cut halfway and completed, are renamed; after each update the
    counts are a full read's join, and no line was parsed twice."""
    rng = random.Random(seed)
    predictions, labels = made(rng)
    lines = {
        "p": [orjson.dumps(x) + b"\n" for x in predictions],
        "l": [orjson.dumps(x) + b"\n" for x in labels],
    }
    log = Log(tmp_path, rng)
    joiner = Joiner(log.folders["p"], log.folders["l"], since=SINCE, late_after=LATE)

    def full() -> feedback.Joined:
        return joined(
            list(predlog.read(log.predictions, "clf")),
            list(feedback.read(log.folders["l"])),
            SINCE,
        )

    while lines["p"] or lines["l"]:
        log.step(lines)
        if rng.random() < 0.4:
            assert joiner.update() == full()
    log.finish()
    assert joiner.update() == full()
    assert joiner.parsed == len(predictions) + len(labels)  # each line once, all of them


def test_an_update_reads_only_what_was_added(tmp_path: Path) -> None:
    folder = predlog.model_folder(tmp_path / "predictions", "clf")
    folder.mkdir(parents=True)
    part = folder / (predlog.segment_name(SINCE, 1, 1) + segments.PART)
    answers = [
        orjson.dumps({**predlog.record(f"r{i}", "clf", "1", "infer", [[0.0]], [1]), "ts": SINCE})
        + b"\n"
        for i in range(4)
    ]
    part.write_bytes(answers[0] + answers[1][:20])  # the second is being written
    writer = feedback.Writer(tmp_path / "feedback")
    writer.write([feedback.label(f"r{i}", 1, SINCE + 1) for i in range(3)])
    joiner = Joiner(folder, tmp_path / "feedback", since=SINCE)
    result = joiner.update()
    assert (result.joined, result.unknown, joiner.parsed) == (1, 2, 4)
    assert joiner.update() == result and joiner.parsed == 4  # nothing new: nothing read
    with part.open("ab") as file:
        file.write(answers[1][20:] + answers[2])
    part.rename(folder / predlog.segment_name(SINCE, 1, 1))
    writer.close()  # the labels' segment renamed too: not read again
    result = joiner.update()
    assert (result.joined, result.unknown, joiner.parsed) == (3, 0, 6)
    assert result.tally(1) == feedback.Tally(3, 3)
    assert joiner.update() == result and joiner.parsed == 6


def test_a_bad_line_is_named_and_not_half_counted(tmp_path: Path) -> None:
    folder = tmp_path / "feedback"
    folder.mkdir()
    bad = folder / predlog.segment_name(SINCE, 1, 1)
    bad.write_bytes(b'{"id": "a", "label": 1, "ts": 1.0}\n{"id": "b"}\n')
    joiner = Joiner(tmp_path / "predictions", folder)
    for _ in range(2):  # read again, and refused again
        with pytest.raises(feedback.FeedbackError, match=bad.name) as caught:
            joiner.update()
        assert "after byte 0" in caught.value.message
    bad.write_bytes(b'{"id": "a", "label": 1, "ts": 1.0}\n')
    assert joiner.update().unknown == 1
