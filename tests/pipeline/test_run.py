"""``conveyor run`` end to end: real stage processes, the real object cache, the real lock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conveyor.pipeline import lock as lock_mod
from tests.conftest import Project, conveyor_process

# Each stage appends its name to ran.log (not an out) so a test can see what really executed.
PIPELINE = """\
stages:
  prepare:
    cmd: echo prepare >> ran.log && tr a-z A-Z < data.txt > prepared.txt
    deps: [data.txt]
    params: [prepare.mode]
    outs: [prepared.txt]
  train:
    cmd: echo train >> ran.log && (cat prepared.txt; echo "C=${train.C}") > model.txt
    deps: [prepared.txt]
    outs: [model.txt]
  evaluate:
    cmd: >-
      echo evaluate >> ran.log && mkdir -p metrics &&
      echo "{\\"score\\": $(wc -c < model.txt)}" > metrics/eval.json
    deps: [model.txt]
    metrics: [metrics/eval.json]
"""
PARAMS = "prepare:\n  mode: upper\ntrain:\n  C: 1.0\n"


@pytest.fixture
def pipe(project: Project) -> Project:
    project.write("data.txt", "hello\n")
    project.write("params.yaml", PARAMS)
    project.write("conveyor.yaml", PIPELINE)
    with (project.root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("ran.log\n")
    return project


def ran(project: Project) -> list[str]:
    """Stages executed since the last call."""
    log = project.root / "ran.log"
    if not log.exists():
        return []
    names = log.read_text().split()
    log.unlink()
    return names


def test_first_run_runs_everything_in_order_and_writes_the_lock(pipe: Project) -> None:
    out = pipe.ok("run")
    assert ran(pipe) == ["prepare", "train", "evaluate"]
    assert "3 ran" in out
    assert (pipe.root / "model.txt").read_text() == "HELLO\nC=1.0\n"
    entries = lock_mod.load(pipe.root)
    assert set(entries) == {"prepare", "train", "evaluate"}
    assert entries["train"].params == {"params.yaml": {"train.C": 1.0}}
    assert set(entries["evaluate"].outs) == {"metrics/eval.json"}
    # Cached outs are git-ignored; metrics (cache: false) are for git.
    assert "/model.txt" in (pipe.root / ".gitignore").read_text().splitlines()
    assert not (pipe.root / "metrics" / ".gitignore").exists()


def test_second_run_does_nothing_and_leaves_the_lock_alone(pipe: Project) -> None:
    pipe.ok("run")
    ran(pipe)
    before = (pipe.root / "conveyor.lock").read_bytes()
    out = pipe.ok("run")
    assert ran(pipe) == []
    assert "3 up to date" in out
    assert (pipe.root / "conveyor.lock").read_bytes() == before
    assert "No stale stages" in pipe.ok("status")


def test_a_param_change_runs_only_what_depends_on_it(pipe: Project) -> None:
    pipe.ok("run")
    ran(pipe)
    pipe.write("params.yaml", PARAMS.replace("C: 1.0", "C: 0.5"))
    status = pipe.ok("status")
    assert "param train.C changed 1.0 -> 0.5" in status  # used through ${train.C} in its cmd
    assert "stage train" in status and "stage prepare" not in status
    out = pipe.ok("run")
    assert ran(pipe) == ["train", "evaluate"]
    assert "param train.C changed 1.0 -> 0.5" in out
    assert "prepare is up to date" in out


def test_status_names_each_reason(pipe: Project) -> None:
    pipe.ok("run")
    pipe.write("data.txt", "changed\n")
    pipe.write("params.yaml", PARAMS.replace("upper", "lower"))
    (pipe.root / "model.txt").unlink()
    report = json.loads(pipe.ok("status", "--json"))["stages"]
    by_stage = {row["stage"]: row for row in report}
    assert by_stage["prepare"]["reasons"] == [
        "dep data.txt modified",
        "param prepare.mode changed upper -> lower",
    ]
    assert by_stage["train"]["reasons"] == ["upstream 'prepare' runs"]


def test_a_dep_change_that_leaves_outs_equal_stops_there(pipe: Project) -> None:
    pipe.ok("run")
    ran(pipe)
    pipe.write("data.txt", "HELLO\n")  # upper-cases to the same prepared.txt
    pipe.ok("run")
    assert ran(pipe) == ["prepare"]


def test_missing_outs_are_checked_out_not_run(pipe: Project) -> None:
    pipe.ok("run")
    ran(pipe)
    (pipe.root / "model.txt").unlink()
    out = pipe.ok("run")
    assert ran(pipe) == []
    assert "train outs checked out" in out
    assert (pipe.root / "model.txt").read_text() == "HELLO\nC=1.0\n"


def test_run_cache_restores_a_combination_seen_on_another_branch(pipe: Project) -> None:
    pipe.ok("run")
    pipe.git("add", "-A")
    pipe.git("commit", "-qm", "C=1.0")
    pipe.git("checkout", "-qb", "experiment")
    pipe.write("params.yaml", PARAMS.replace("C: 1.0", "C: 0.25"))
    pipe.ok("run")
    pipe.git("commit", "-qam", "C=0.25")
    pipe.git("checkout", "-q", "main")
    ran(pipe)
    # Back on main: params and lock say C=1.0, the workspace holds C=0.25's outs.
    out = pipe.ok("run")
    assert ran(pipe) == []
    assert "restored from run-cache" in out
    assert (pipe.root / "model.txt").read_text() == "HELLO\nC=1.0\n"
    pipe.git("checkout", "-q", "experiment")
    out = pipe.ok("run")
    assert ran(pipe) == [] and "restored from run-cache" in out
    assert (pipe.root / "model.txt").read_text() == "HELLO\nC=0.25\n"
    assert pipe.git("status", "--porcelain") == ""  # the lock came back byte for byte


def test_no_run_cache_runs_again(pipe: Project) -> None:
    pipe.ok("run")
    pipe.write("params.yaml", PARAMS.replace("C: 1.0", "C: 2.0"))
    pipe.ok("run")
    pipe.write("params.yaml", PARAMS)
    ran(pipe)
    pipe.ok("run", "--no-run-cache")
    assert ran(pipe) == ["train", "evaluate"]


def test_overrides_apply_to_the_run_only(pipe: Project) -> None:
    pipe.ok("run", "-S", "train.C=3")
    assert (pipe.root / "model.txt").read_text() == "HELLO\nC=3\n"
    assert (pipe.root / "params.yaml").read_text() == PARAMS
    assert lock_mod.load(pipe.root)["train"].params == {"params.yaml": {"train.C": 3}}
    result = pipe.run("run", "-S", "train.CC=3")
    assert result.code == 2 and "did you mean 'train.C'" in result.err


def test_dry_prints_the_plan_and_runs_nothing(pipe: Project) -> None:
    out = pipe.ok("run", "--dry")
    assert ran(pipe) == [] and not (pipe.root / "conveyor.lock").exists()
    assert "prepare" in out and "never run" in out


def test_target_selection(pipe: Project) -> None:
    pipe.ok("run", "train")
    assert ran(pipe) == ["prepare", "train"]
    pipe.ok("run", "--force", "--single", "train")
    assert ran(pipe) == ["train"]
    pipe.ok("run", "--force", "--downstream", "train")
    assert ran(pipe) == ["train", "evaluate"]
    result = pipe.run("run", "trian")
    assert result.code == 2 and "did you mean 'train'" in result.err


def test_stage_environment_and_log(project: Project) -> None:
    project.write(
        "conveyor.yaml",
        "stages:\n  show:\n    cmd: env | grep ^CONVEYOR_ | sort > env.txt; echo to-stderr >&2\n"
        "    outs: [env.txt]\n    env: {EXTRA: yes}\n",
    )
    result = project.run("run")
    assert result.code == 0
    env = dict(line.split("=", 1) for line in (project.root / "env.txt").read_text().splitlines())
    assert env["CONVEYOR_STAGE"] == "show"
    assert env["CONVEYOR_ROOT"] == str(project.root.resolve())
    run_id = env["CONVEYOR_RUN_ID"]
    log = project.root / ".conveyor" / "logs" / run_id / "show.log"
    assert "to-stderr" in log.read_text()
    assert "show" in result.err and "| to-stderr" in result.err


def test_a_failed_stage_commits_nothing_and_stops_its_dependents(project: Project) -> None:
    project.write(
        "conveyor.yaml",
        """\
stages:
  ok:
    cmd: echo ok > ok.txt
    outs: [ok.txt]
  bad:
    cmd: echo partial > bad.txt; echo something broke >&2; exit 3
    outs: [bad.txt]
  after:
    cmd: cp bad.txt after.txt
    deps: [bad.txt]
    outs: [after.txt]
""",
    )
    result = project.run("run", "-j", "1", "--keep-going")
    assert result.code == 1
    assert "bad failed (exit code 3)" in result.out
    assert "something broke" in result.out  # the tail of its stderr
    assert "after skipped" in result.out
    entries = lock_mod.load(project.root)
    assert set(entries) == {"ok"}  # no entry for the failed stage
    assert not (project.root / "after.txt").exists()
    # Without --keep-going nothing new starts after the failure.
    project.write(
        "conveyor.yaml", (project.root / "conveyor.yaml").read_text().replace("ok.txt", "ok2.txt")
    )
    result = project.run("run", "-j", "1", "bad", "ok")
    assert result.code == 1


def test_a_stage_that_does_not_write_its_out_fails(project: Project) -> None:
    project.write("conveyor.yaml", "stages:\n  lazy:\n    cmd: 'true'\n    outs: [never.txt]\n")
    result = project.run("run")
    assert result.code == 1 and "did not write never.txt" in result.out
    assert not (project.root / "conveyor.lock").exists()


def test_independent_stages_run_at_the_same_time(project: Project) -> None:
    # Each waits for the other's marker: they can only both finish if they overlap.
    wait = "for i in $(seq 200); do [ -e {other} ] && break; sleep 0.05; done; [ -e {other} ]"
    project.write(
        "conveyor.yaml",
        f"""\
stages:
  a:
    cmd: touch a.mark && {wait.format(other="b.mark")} && echo a > a.txt
    outs: [a.txt]
  b:
    cmd: touch b.mark && {wait.format(other="a.mark")} && echo b > b.txt
    outs: [b.txt]
  both:
    cmd: cat a.txt b.txt > both.txt
    deps: [a.txt, b.txt]
    outs: [both.txt]
""",
    )
    project.ok("run", "-j", "2")
    assert (project.root / "both.txt").read_text() == "a\nb\n"


def test_one_job_runs_stages_one_after_another(project: Project) -> None:
    body = "cmd: 'echo start-{n} >> order.log; sleep 0.2; echo end-{n} >> order.log; touch {n}'"
    stages = "".join(f"  s{n}:\n    {body.format(n=n)}\n    outs: ['{n}']\n" for n in range(3))
    project.write("conveyor.yaml", "stages:\n" + stages)
    project.ok("run", "-j", "1")
    order = (project.root / "order.log").read_text().split()
    assert order == ["start-0", "end-0", "start-1", "end-1", "start-2", "end-2"]


def test_sigterm_stops_the_stages_and_keeps_the_lock_whole(
    project: Project, tmp_path: Path
) -> None:
    project.write(
        "conveyor.yaml",
        """\
stages:
  quick:
    cmd: echo done > quick.txt
    outs: [quick.txt]
  slow:
    cmd: echo $$ > slow.pid; sleep 60; echo never > slow.txt
    deps: [quick.txt]
    outs: [slow.txt]
""",
    )
    proc = conveyor_process("run", cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pid_file = project.root / "slow.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the slow stage never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    child = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    entries = lock_mod.load(project.root)  # parses: never half-written
    assert set(entries) == {"quick"}
    assert not (project.root / "slow.txt").exists()


def test_dag_formats(pipe: Project) -> None:
    text = pipe.ok("dag")
    assert "train     <- prepare" in text
    assert '"prepare" -> "train";' in pipe.ok("dag", "--dot")
    mermaid = pipe.ok("dag", "--mermaid")
    assert mermaid.startswith("flowchart LR") and "s0 --> s1" in mermaid


def test_metrics_and_params_show(pipe: Project) -> None:
    pipe.ok("run")
    metrics = json.loads(pipe.ok("metrics", "show", "--json"))
    assert metrics == {"eval.score": len("HELLO\nC=1.0\n")}
    params = json.loads(pipe.ok("params", "show", "--json"))
    assert params == {"prepare.mode": "upper", "train.C": 1.0}
    assert "eval.score" in pipe.ok("metrics", "show")


def test_a_config_error_is_one_line_with_the_place(pipe: Project) -> None:
    pipe.write("conveyor.yaml", PIPELINE.replace("    outs: [model.txt]", "    outz: [model.txt]"))
    result = pipe.run("run")
    assert result.code == 2
    assert "conveyor.yaml:10" in result.err and "did you mean 'outs'" in result.err
    assert "Traceback" not in result.err


def test_gc_keeps_pipeline_outs_and_push_pull_move_them(pipe: Project, tmp_path: Path) -> None:
    pipe.ok("run")
    pipe.git("add", "-A")
    pipe.git("commit", "-qm", "run")
    # A different length: git trusts a same-size file whose stat matches its index entry.
    pipe.write("params.yaml", PARAMS.replace("C: 1.0", "C: 9.25"))
    pipe.ok("run")  # the C=1.0 outs are now named only by the committed lock
    pipe.ok("gc", "--all-commits")
    pipe.git("checkout", "--", "params.yaml", "conveyor.lock")
    ran(pipe)
    assert "restored from run-cache" in pipe.ok("run")  # its objects survived gc
    assert ran(pipe) == []
    pipe.ok("gc")  # the workspace's lock alone still keeps its outs
    (pipe.root / "model.txt").unlink()
    assert "train outs checked out" in pipe.ok("run")

    store = tmp_path / "store"
    pipe.ok("remote", "add", "store", str(store), "--default")
    pipe.ok("push")
    shutil.rmtree(pipe.root / ".conveyor" / "cache")
    (pipe.root / "model.txt").unlink()
    pipe.ok("pull")
    assert (pipe.root / "model.txt").read_text() == "HELLO\nC=1.0\n"
    ran(pipe)
    assert "3 up to date" in pipe.ok("run")


def test_a_stage_reads_the_overridden_params_file_which_comes_back_after(project: Project) -> None:
    project.write("params.yaml", "# tuned by hand\na:\n  x: 1\n")
    project.write(
        "conveyor.yaml",
        "stages:\n  s:\n    cmd: cat params.yaml > seen.txt\n    params: [a]\n"
        "    outs: [seen.txt]\n  bad:\n    cmd: exit 1\n    params: [a.x]\n",
    )
    result = project.run("run", "-S", "a.x=5", "--keep-going")
    assert result.code == 1  # 'bad' fails: the params file must come back all the same
    assert "x: 5" in (project.root / "seen.txt").read_text()
    assert (project.root / "params.yaml").read_text() == "# tuned by hand\na:\n  x: 1\n"
    assert "param a.x changed 5 -> 1" in project.ok("status")


def _git_files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in (root / ".git").rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "out", [".git", ".git/hooks/post-commit", "conveyor.yaml", "conveyor.lock", "data.txt.cvy"]
)
def test_an_out_conveyor_must_not_delete_is_refused_before_anything_runs(
    project: Project, out: str
) -> None:
    project.write("data.txt", "hello\n")
    (project.root / "data.txt.cvy").write_text("# a pointer\n")
    text = (
        "stages:\n  first:\n    cmd: echo first >> ran.log && echo x > ok.txt\n"
        f"    outs: [ok.txt]\n  bad:\n    cmd: echo bad >> ran.log\n    outs: ['{out}']\n"
    )
    project.write("conveyor.yaml", text)
    (project.root / "conveyor.lock").write_text("schema: 1\nstages: {}\n")
    git = _git_files(project.root)
    result = project.run("run")
    assert result.code == 2, result.err
    assert f"conveyor.yaml:7: stage 'bad': out {out} " in result.err
    assert "Traceback" not in result.err
    assert ran(project) == []
    assert _git_files(project.root) == git
    assert (project.root / "conveyor.yaml").read_text() == text
    assert (project.root / "data.txt.cvy").read_text() == "# a pointer\n"
    assert (project.root / "conveyor.lock").exists()


@pytest.mark.parametrize("into_git", [False, True])
def test_an_out_under_a_symlinked_folder_is_refused_before_anything_runs(
    project: Project, tmp_path: Path, into_git: bool
) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "hooks").mkdir(parents=True)
    (outside / "hooks" / "post-commit").write_text("precious")
    os.symlink(project.root / ".git" if into_git else outside, project.root / "link")
    project.write(
        "conveyor.yaml",
        "stages:\n  first:\n    cmd: echo first >> ran.log && echo x > ok.txt\n"
        "    outs: [ok.txt]\n  bad:\n    cmd: echo bad >> ran.log\n"
        "    outs: [link/hooks/post-commit]\n",
    )
    git = _git_files(project.root)
    result = project.run("run")
    assert result.code == 2, result.err
    assert "conveyor.yaml:5: stage 'bad': out link/hooks/post-commit lies under link" in result.err
    assert ("git's own folder" if into_git else "outside the project") in result.err
    assert ran(project) == []
    assert (outside / "hooks" / "post-commit").read_text() == "precious"
    assert _git_files(project.root) == git


def test_a_file_where_an_out_folder_should_be_is_a_clear_error(project: Project) -> None:
    project.write("data/prepared", "a file\n")
    project.write(
        "conveyor.yaml",
        "stages:\n  prep:\n    cmd: echo prep >> ran.log && echo x > data/prepared/x.csv\n"
        "    outs: [data/prepared/x.csv]\n",
    )
    result = project.run("run")
    assert result.code == 2, result.err
    assert (
        "conveyor.yaml:2: stage 'prep': out data/prepared/x.csv needs data/prepared to be a "
        "folder, but it is a file" in result.err
    )
    assert "Traceback" not in result.err and ran(project) == []
    assert (project.root / "data/prepared").read_text() == "a file\n"


def test_a_file_an_upstream_stage_writes_where_an_out_folder_goes_fails_that_stage(
    project: Project,
) -> None:
    project.write(
        "conveyor.yaml",
        "stages:\n  a:\n    cmd: echo a > data && echo a > a.txt\n    outs: [a.txt]\n"
        "  b:\n    cmd: mkdir -p data && echo b > data/b.txt\n    deps: [a.txt]\n"
        "    outs: [data/b.txt]\n",
    )
    result = project.run("run")
    assert result.code == 1, result.err
    assert "b failed" in result.out and "out data/b.txt needs data to be a folder" in result.out
    assert "Traceback" not in result.err + result.out


def test_a_frozen_stage_with_a_new_out_does_not_crash(project: Project) -> None:
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n")
    project.ok("run")
    project.write(
        "conveyor.yaml",
        "stages:\n  s:\n    cmd: echo a > a.txt; echo b > b.txt\n    outs: [a.txt, b.txt]\n"
        "    frozen: true\n",
    )
    (project.root / "a.txt").unlink()
    project.ok("run")
    assert (project.root / "a.txt").read_text() == "a\n"
