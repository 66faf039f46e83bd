"""The incremental join: the same counts as :func:`feedback.join` over everything, whatever order
labels and predictions arrive in, reading each line of the segments once (and a prediction's
again when a label of its id comes after it: until then only where it is is kept)."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from conveyor.monitor import feedback, predlog, segments
from conveyor.monitor.joiner import Index, Joiner, Running

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


def test_a_bad_prediction_read_by_its_id_alone_is_named_when_its_label_comes(
    tmp_path: Path,
) -> None:
    """The fast path reads an unlabelled line's id only: the rest of a broken line is found
    when a label of its id comes, named as a bad line read at once is; moving the segment out
    (as the hint says) lets the next update go on."""
    folder = predlog.model_folder(tmp_path / "predictions", "clf")
    folder.mkdir(parents=True)
    segment = folder / predlog.segment_name(SINCE, 1, 1)
    good = {**predlog.record("r0", "clf", "1", "infer", [[0.0]], [1]), "ts": SINCE}
    segment.write_bytes(orjson.dumps(good) + b'\n{"id":"r1", broken\n')
    joiner = Joiner(folder, tmp_path / "feedback", since=SINCE)
    assert joiner.update().unknown == 0 and joiner.indexed == 2
    writer = feedback.Writer(tmp_path / "feedback")
    writer.write([feedback.label("r1", 1, SINCE + 1)])
    writer.close()
    for _ in range(2):  # refused again, not forgotten
        with pytest.raises(feedback.FeedbackError, match=segment.name) as caught:
            joiner.update()
        assert "not a record" in caught.value.message
    segment.rename(tmp_path / "moved-out")
    result = joiner.update()
    assert (result.joined, result.unknown) == (0, 1)


# -- the index of predictions no label has come for ------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_the_index_finds_every_line_of_the_hashes_asked(seed: int) -> None:
    """Chunks of lines (few hashes, so many collide) merged in runs: the lines of the hashes
    asked, each once, wherever the merges put them."""
    rng = random.Random(seed)
    index = Index()
    lines: list[tuple[int, int, int]] = []  # (hash, segment, offset)
    for segment in range(rng.randint(1, 30)):
        hashes = [rng.randint(-5, 5) * 2**60 for _ in range(rng.randint(0, 40))]
        offsets = sorted(rng.sample(range(10_000), len(hashes)))
        index.add(np.array(hashes, dtype=np.int64), segment, np.array(offsets, dtype=np.uint64))
        lines += [(h, segment, o) for h, o in zip(hashes, offsets, strict=True)]
        asked = {rng.randint(-6, 6) * 2**60 for _ in range(3)}
        found = index.find(asked)
        assert sorted(found) == sorted((s, o) for h, s, o in lines if h in asked)
    assert (index.nbytes, len(index)) == (20 * len(lines), len(lines))


@pytest.mark.parametrize("seed", range(40))
def test_ids_whose_hashes_collide_are_told_apart(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three hashes for all ids: every label reads again predictions of other ids too."""
    monkeypatch.setattr("conveyor.monitor.joiner._hash", lambda request_id: len(request_id) % 3)
    test_joiner_over_files_is_join_of_a_full_read(tmp_path, seed)


def test_a_label_colliding_with_an_id_answered_before_since_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("conveyor.monitor.joiner._hash", lambda request_id: 0)
    folder = predlog.model_folder(tmp_path / "predictions", "clf")
    folder.mkdir(parents=True)
    answers = [("before", SINCE - 5), ("after", SINCE + 1)]
    segment = folder / predlog.segment_name(SINCE, 1, 1)
    segment.write_bytes(b"".join(orjson.dumps(answer(i, ts)) + b"\n" for i, ts in answers))
    follower = Joiner(folder, tmp_path / "feedback", since=SINCE)
    assert follower.update().unknown == 0 and follower.indexed == 2
    labels = [feedback.label(i, 1, SINCE + 10) for i in ("other", "before", "after")]
    feedback.append(tmp_path / "feedback", labels)
    result = follower.update()
    assert (result.joined, result.unknown, follower.reread) == (1, 1, 2)
    assert result == joined(list(predlog.read(tmp_path / "predictions", "clf")), labels, SINCE)


def answer(request_id: str, ts: float, version: str = "1", output: Any = 1) -> Any:
    return {**predlog.record(request_id, "clf", version, "infer", [[0.5, 1.5]], [output]), "ts": ts}


@pytest.mark.timeout(120)
def test_an_unlabelled_prediction_takes_twenty_bytes(tmp_path: Path) -> None:
    """200,000 predictions with no label yet, in eight segments (one of them a ``.part`` that
    is renamed later): the joiner keeps 20 bytes of each, and takes under 60 more while it
    reads them (the chunk being read included). Labels that come later for some of them (and
    for ids answered before ``since`` only, by two versions, or never) join as a full read."""
    count, per_segment = 200_000, 25_000
    folder = predlog.model_folder(tmp_path / "predictions", "clf")
    folder.mkdir(parents=True)
    for n in range(count // per_segment):
        data = b"".join(
            orjson.dumps(answer(f"r{i}", SINCE + (-1 if i % 10 == 0 else 1), str(i % 3 // 2)))
            + b"\n"
            for i in range(n * per_segment, (n + 1) * per_segment)
        )
        name = predlog.segment_name(SINCE, 1, n)
        (folder / (name + segments.PART if n == 7 else name)).write_bytes(data)
    follower = Joiner(folder, tmp_path / "feedback", since=SINCE, late_after=LATE)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        follower.update()
        grew = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    print(f"{follower.nbytes / count} bytes a prediction kept, {grew / count:.1f} at the peak")
    assert (follower.indexed, follower.parsed) == (count, count)
    assert follower.nbytes / count <= 20 < 40
    assert grew / count < 60, f"{grew / count:.1f} bytes a prediction at the peak"
    assert follower.update() == feedback.Joined() and follower.parsed == count

    (folder / (name + segments.PART)).rename(folder / name)  # the last one finished
    another = orjson.dumps(answer("r199999", SINCE + 2, "9")) + b"\n"  # read once labelled
    (folder / predlog.segment_name(SINCE, 1, 8)).write_bytes(another)
    rng = random.Random(0)
    sample = [f"r{i}" for i in rng.sample(range(count), 1_000)] + ["r0", "r199999", "nobody"]
    labels = [feedback.label(i, rng.choice([0, 1]), SINCE + 100) for i in sample]
    feedback.append(tmp_path / "feedback", labels)
    result = follower.update()
    assert result == joined(list(predlog.read(tmp_path / "predictions", "clf")), labels, SINCE)
    assert (result.unknown, result.tally(9).labelled) == (1, 1)
    assert follower.reread == len(set(sample)) - 1  # each line of a labelled id, read again


@pytest.mark.parametrize("seed", range(20))
def test_lines_are_where_they_are_read_again(tmp_path: Path, seed: int) -> None:
    """The lines records() reads, breaks of every kind, with the offsets a segment's lines are
    read again at: in its ``.part``, once renamed, and none once it is gone."""
    rng = random.Random(seed)
    breaks = [b"\n", b"\n", b"\r\n", b"\r", b"\n\n", b"\r\r\n"]
    data = b"".join(
        orjson.dumps({"id": f"r{i}"}) + rng.choice(breaks) for i in range(rng.randint(0, 30))
    )
    found = list(segments.lines(data))
    assert [orjson.loads(line) for _, line in found] == list(segments.records(data))
    assert all(data[at : at + len(line)] == line for at, line in found)
    name = predlog.segment_name(SINCE, 1, 1)
    (tmp_path / (name + segments.PART)).write_bytes(data)
    starts = [at for at, _ in found]
    assert list(segments.lines_at(tmp_path, name, starts)) == found
    (tmp_path / (name + segments.PART)).rename(tmp_path / name)
    assert list(segments.lines_at(tmp_path, name, starts)) == found
    (tmp_path / name).unlink()
    assert list(segments.lines_at(tmp_path, name, starts)) == []


def test_a_log_written_in_another_form_joins_the_same(tmp_path: Path) -> None:
    """The id is read without parsing a line written as the server writes it; any other form
    (keys in another order, spaces, escaped or non-ASCII ids) is parsed whole: the same join."""
    ids = ["plain", 'quote"d', "back\\slash", "ünïcode", "tab\tbed"]
    folder = predlog.model_folder(tmp_path / "predictions", "clf")
    folder.mkdir(parents=True)
    lines = []
    for i, rid in enumerate(ids):
        one = {**predlog.record(rid, "clf", "1", "infer", [[0.0]], [1]), "ts": SINCE}
        lines.append(orjson.dumps(one))  # the server's form
        lines.append(orjson.dumps(dict(reversed(list(one.items())))))  # another order
        lines.append(b'{ "id": ' + orjson.dumps(f"{rid}-{i}") + b', "ts": 1000.0, "version": '
                     b'"2", "outputs": [0], "inputs": [[1]] }')  # fmt: skip
    (folder / predlog.segment_name(SINCE, 1, 1)).write_bytes(b"\n".join(lines) + b"\n")
    writer = feedback.Writer(tmp_path / "feedback")
    writer.write([feedback.label(rid, 1, SINCE + 1) for rid in ids])
    writer.write([feedback.label(f"{rid}-{i}", 0, SINCE + 1) for i, rid in enumerate(ids)])
    writer.close()
    result = Joiner(folder, tmp_path / "feedback", since=SINCE).update()
    full = joined(
        list(predlog.read(tmp_path / "predictions", "clf")),
        list(feedback.read(tmp_path / "feedback")),
        SINCE,
    )
    assert result == full and result.joined == 2 * len(ids)
