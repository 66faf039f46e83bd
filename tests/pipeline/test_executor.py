"""The local process pool, with real processes: order, codes, output, parallelism and stop."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor.pipeline.executor import Executor, Job, LocalPool, Outcome

pytestmark = pytest.mark.timeout(60)

ENV = {"PATH": os.environ["PATH"], "LC_ALL": "C"}


class ListSink:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()

    def line(self, stage: str, text: str, err: bool) -> None:
        with self._lock:
            self.lines.append((stage, text, err))


MakePool = Callable[..., Executor]


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def make_pool(sink: ListSink) -> Iterator[MakePool]:
    """A LocalPool factory; every pool is stopped at teardown so no process outlives a test."""
    pools: list[Executor] = []

    def make(jobs: int = 2) -> Executor:
        pool = LocalPool(jobs, sink)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.stop(grace=1.0)


def job(tmp_path: Path, stage: str, *commands: str, **kw: object) -> Job:
    fields: dict[str, object] = {
        "cwd": tmp_path,
        "env": ENV,
        "log": tmp_path / "logs" / f"{stage}.log",
    }
    fields.update(kw)
    return Job(stage, commands, **fields)  # type: ignore[arg-type]


def run_all(pool: Executor) -> list[Outcome]:
    outcomes: list[Outcome] = []
    while pool.busy:
        outcomes += pool.wait()
    return outcomes


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # an unreaped zombie is dead too


def test_commands_run_in_order_and_stop_at_first_failure(
    tmp_path: Path, make_pool: MakePool
) -> None:
    pool = make_pool()
    pool.submit(job(tmp_path, "s", "echo one >> out", "echo two >> out", "exit 3", "echo x >> out"))
    [outcome] = run_all(pool)
    assert (outcome.stage, outcome.code) == ("s", 3)
    assert outcome.duration >= 0
    assert (tmp_path / "out").read_text() == "one\ntwo\n"


def test_success_and_stderr_tail(tmp_path: Path, make_pool: MakePool) -> None:
    pool = make_pool()
    pool.submit(job(tmp_path, "ok", "true"))
    pool.submit(
        job(tmp_path, "bad", "i=1; while [ $i -le 30 ]; do echo e$i >&2; i=$((i+1)); done; exit 5")
    )
    outcomes = {o.stage: o for o in run_all(pool)}
    assert (outcomes["ok"].code, outcomes["ok"].tail) == (0, "")
    assert outcomes["bad"].code == 5
    assert outcomes["bad"].tail.splitlines() == [f"e{i}" for i in range(11, 31)]


def test_unknown_command_gives_what_sh_returns(tmp_path: Path, make_pool: MakePool) -> None:
    pool = make_pool()
    pool.submit(job(tmp_path, "s", "no-such-command-xyz"))
    [outcome] = run_all(pool)
    assert outcome.code == 127
    assert "no-such-command-xyz" in outcome.tail


def test_env_and_cwd_reach_the_child(tmp_path: Path, make_pool: MakePool, sink: ListSink) -> None:
    work = tmp_path / "work"
    work.mkdir()
    pool = make_pool()
    env = {**ENV, "GREETING": "hi there"}
    pool.submit(
        job(tmp_path, "s", 'printf "%s\\n" "$GREETING" "${HOME-unset}" "$(pwd)"', cwd=work, env=env)
    )
    [outcome] = run_all(pool)
    assert outcome.code == 0
    assert [text for _, text, _ in sink.lines] == ["hi there", "unset", str(work.resolve())]


def test_output_reaches_sink_and_log(tmp_path: Path, make_pool: MakePool, sink: ListSink) -> None:
    log = tmp_path / "deep" / "er" / "s.log"
    log.parent.mkdir(parents=True)
    log.write_text("old content\n")
    pool = make_pool()
    commands = ("echo out1; echo err1 >&2", "printf '\\377bad\\r\\n'; printf 'no newline'")
    pool.submit(job(tmp_path, "stage-a", *commands, log=log))
    [outcome] = run_all(pool)
    assert outcome.code == 0
    assert sorted(sink.lines) == sorted(
        [
            ("stage-a", "out1", False),
            ("stage-a", "err1", True),
            ("stage-a", "\ufffdbad", False),
            ("stage-a", "no newline", False),
        ]
    )
    header, *body = log.read_text(encoding="utf-8").splitlines()
    assert "stage-a" in header and str(time.localtime().tm_year) in header
    assert sorted(body) == sorted(["out1", "err1", "\ufffdbad", "no newline"])
    assert outcome.tail == "err1"


def test_two_slots_run_jobs_concurrently(tmp_path: Path, make_pool: MakePool) -> None:
    # Each job waits for the other's file, so both succeed only if they run at the same time.
    pool = make_pool(jobs=2)
    for mine, theirs in (("a", "b"), ("b", "a")):
        meet = (
            f"touch {mine}; i=0; while [ ! -e {theirs} ]; do "
            f"i=$((i+1)); [ $i -gt 500 ] && exit 9; sleep 0.01; done"
        )
        pool.submit(job(tmp_path, mine, meet))
    assert sorted((o.stage, o.code) for o in run_all(pool)) == [("a", 0), ("b", 0)]


def test_one_slot_runs_jobs_one_after_another_in_order(tmp_path: Path, make_pool: MakePool) -> None:
    pool = make_pool(jobs=1)
    for name in ("a", "b", "c"):
        # Fails if any other job started while this one ran; leaves the order in `order`.
        pool.submit(
            job(
                tmp_path,
                name,
                f"[ ! -e running ] || exit 7; touch running; echo {name} >> order",
                "sleep 0.05",
                "rm running",
            )
        )
    assert pool.busy == 3
    outcomes = run_all(pool)
    assert [(o.stage, o.code) for o in outcomes] == [("a", 0), ("b", 0), ("c", 0)]
    assert (tmp_path / "order").read_text() == "a\nb\nc\n"
    assert pool.busy == 0
    assert pool.wait() == []


def test_stop_kills_running_job_and_grandchild_and_drops_queue(
    tmp_path: Path, make_pool: MakePool
) -> None:
    pool = make_pool(jobs=1)
    pool.submit(job(tmp_path, "long", "sleep 60 & echo $! > pid.tmp; mv pid.tmp pid; wait"))
    pool.submit(job(tmp_path, "queued", "touch ran"))
    pid_file = tmp_path / "pid"
    wait_for(pid_file.exists, "the job to start its grandchild")
    grandchild = int(pid_file.read_text())
    assert alive(grandchild)

    pool.stop(grace=5.0)

    assert [(o.stage, o.code) for o in pool.wait()] == [("long", -signal.SIGTERM)]
    assert pool.busy == 0
    assert pool.wait() == []
    wait_for(lambda: not alive(grandchild), "the grandchild to die")
    assert not (tmp_path / "ran").exists()
    pool.stop()  # a second stop is harmless
    with pytest.raises(RuntimeError, match="stopped"):
        pool.submit(job(tmp_path, "late", "true"))


def test_stop_kills_after_grace_when_sigterm_is_ignored(
    tmp_path: Path, make_pool: MakePool
) -> None:
    pool = make_pool(jobs=1)
    pool.submit(job(tmp_path, "stubborn", "trap '' TERM; touch ready; sleep 60"))
    wait_for((tmp_path / "ready").exists, "the job to ignore SIGTERM")
    pool.stop(grace=0.1)
    assert [(o.stage, o.code) for o in pool.wait()] == [("stubborn", -signal.SIGKILL)]


def test_stop_when_idle(make_pool: MakePool) -> None:
    pool = make_pool()
    assert pool.busy == 0
    assert pool.wait() == []
    pool.stop()
    pool.stop()


def test_missing_cwd_gives_a_failed_outcome(
    tmp_path: Path, make_pool: MakePool, sink: ListSink
) -> None:
    pool = make_pool()
    pool.submit(job(tmp_path, "s", "true", cwd=tmp_path / "nope"))
    [outcome] = run_all(pool)
    assert outcome.code == 127
    assert "nope" in outcome.tail and "true" in outcome.tail
    assert sink.lines == [("s", outcome.tail, True)]


def test_unwritable_log_gives_a_failed_outcome(tmp_path: Path, make_pool: MakePool) -> None:
    (tmp_path / "file").write_text("")
    pool = make_pool()
    pool.submit(job(tmp_path, "s", "touch ran", log=tmp_path / "file" / "s.log"))
    [outcome] = run_all(pool)
    assert outcome.code == 127
    assert "s.log" in outcome.tail
    assert not (tmp_path / "ran").exists()


def test_background_job_holding_the_output_is_waited_for(
    tmp_path: Path, make_pool: MakePool, sink: ListSink
) -> None:
    pool = make_pool()
    pool.submit(job(tmp_path, "s", "(sleep 0.3; echo late) & echo early"))
    [outcome] = run_all(pool)
    assert outcome.code == 0
    assert [text for _, text, _ in sink.lines] == ["early", "late"]


def test_daemon_left_by_a_finished_command_is_stopped(tmp_path: Path, make_pool: MakePool) -> None:
    # It closed its output, so the stage looked finished; it must not write outs afterwards.
    pool = make_pool()
    daemon = "sh -c 'echo $$ > d.tmp; mv d.tmp d.pid; exec sleep 60' >/dev/null 2>&1 </dev/null &"
    pool.submit(job(tmp_path, "s", f"{daemon} while [ ! -e d.pid ]; do sleep 0.01; done"))
    [outcome] = run_all(pool)
    assert outcome.code == 0
    assert not alive(int((tmp_path / "d.pid").read_text()))


def test_exit_codes_and_signals_come_through_the_supervisor(
    tmp_path: Path, make_pool: MakePool
) -> None:
    pool = make_pool()
    pool.submit(job(tmp_path, "code", "exit 42"))
    pool.submit(job(tmp_path, "signal", "kill -USR1 $$"))
    codes = {o.stage: o.code for o in run_all(pool)}
    assert codes == {"code": 42, "signal": -signal.SIGUSR1}


def test_stop_reaches_a_grandchild_that_left_the_process_group(
    tmp_path: Path, make_pool: MakePool
) -> None:
    pool = make_pool(jobs=1)
    pool.submit(job(tmp_path, "s", "setsid sleep 60 & echo $! > pid.tmp; mv pid.tmp pid; wait"))
    wait_for((tmp_path / "pid").exists, "the job to start its grandchild")
    escaped = int((tmp_path / "pid").read_text())
    wait_for(lambda: os.getpgid(escaped) == escaped, "the grandchild to leave the group")
    pool.stop(grace=5.0)
    assert [(o.stage, o.code) for o in pool.wait()] == [("s", -signal.SIGTERM)]
    wait_for(lambda: not alive(escaped), "the escaped grandchild to die")


def test_a_detached_supervisor_keeps_exit_codes_signals_and_output(
    tmp_path: Path, sink: ListSink
) -> None:
    # How a Ray worker starts stage commands: one process away, so that Ray's SIGKILL of a
    # dead worker's children does not take the supervisor with it.
    pool = LocalPool(2, sink, detach=True)
    try:
        pool.submit(job(tmp_path, "ok", "echo out; echo err >&2"))
        pool.submit(job(tmp_path, "three", "exit 3"))
        pool.submit(job(tmp_path, "killed", "kill -TERM $$"))
        codes = {o.stage: o.code for o in run_all(pool)}
    finally:
        pool.stop(grace=1.0)
    assert codes == {"ok": 0, "three": 3, "killed": -signal.SIGTERM}
    assert ("ok", "out", False) in sink.lines and ("ok", "err", True) in sink.lines
