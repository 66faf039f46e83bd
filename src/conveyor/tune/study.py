"""Running a search with Optuna: the study lives in the project's metadata database (Optuna's
RDB storage on the same SQLite file or PostgreSQL server), so an interrupted search resumes and
several machines can share one. Each trial is an experiment: a pipeline run with the trial's
params as ``-S`` overrides, in its own workspace copy, recorded as a run tagged with the study
and trial number; unchanged upstream stages are restored from the cache, not re-run.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from conveyor.foundation import project
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.lock import alive
from conveyor.pipeline import definition, experiments
from conveyor.pipeline import metrics as metrics_mod
from conveyor.pipeline.record import TAGS_ENV
from conveyor.tracking.db import url_for
from conveyor.tracking.store import engine_url
from conveyor.tune.spec import SECTION, Dimension, TuneSpec

if TYPE_CHECKING:
    import optuna


MEDIAN_STARTUP = 2  # complete trials before the median pruner judges others


class Result(NamedTuple):
    number: int
    state: str  # "complete" or "fail"
    value: float | None
    params: dict[str, Any]
    run: str
    note: str = ""


def load_spec(root: Path) -> TuneSpec:
    """The project's ``tune:`` section, parsed (see :mod:`conveyor.tune.spec`)."""
    spec: TuneSpec | None = project.section(root, SECTION)
    if spec is None:
        raise ConfigError(
            f"{project.FILE} has no 'tune:' section",
            hint="declare the objective and the search space; see docs/tuning.md",
        )
    return spec


@contextmanager
def storage(root: Path) -> Iterator[optuna.storages.RDBStorage]:
    """Optuna's storage on the project's database, its connections closed afterwards."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = engine_url(url_for(root))
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    store = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    try:
        yield store
    finally:
        store.remove_session()
        store.engine.dispose()


def open_study(store: optuna.storages.RDBStorage, spec: TuneSpec, *, resume: bool) -> optuna.Study:
    import optuna

    names = {s.study_name for s in optuna.get_all_study_summaries(store)}
    if spec.study in names and not resume:
        raise ConfigError(
            f"study {spec.study!r} already exists",
            hint="continue it with `conveyor tune --resume`, or name a new one (tune.study)",
        )
    study = optuna.create_study(
        study_name=spec.study,
        storage=store,
        direction=optuna.study.StudyDirection.MAXIMIZE
        if spec.direction == "maximize"
        else optuna.study.StudyDirection.MINIMIZE,
        sampler=_sampler(spec),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP)
        if spec.pruner == "median"
        else optuna.pruners.NopPruner(),
        load_if_exists=resume,
    )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # Left running by an interrupted search on this machine: it will never report. A
        # trial another live search (here or elsewhere) runs is left to it.
        owner = trial.user_attrs.get("owner", "")
        host, _, pid = owner.rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not alive(int(pid)):
            store.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return study


def _sampler(spec: TuneSpec) -> optuna.samplers.BaseSampler:
    import optuna

    seed = spec.seed
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler({d.name: _grid(d) for d in spec.space}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _grid(d: Dimension) -> list[Any]:
    if d.type == "categorical":
        return list(d.choices)
    assert d.low is not None and d.high is not None
    step = d.step or 1.0
    count = round((d.high - d.low) / step) + 1
    values = [d.low + i * step for i in range(count)]
    return [int(v) for v in values] if d.type == "int" else values


def distributions(spec: TuneSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    from optuna import distributions as dist

    out: dict[str, dist.BaseDistribution] = {}
    for d in spec.space:
        if d.type == "categorical":
            out[d.name] = dist.CategoricalDistribution(list(d.choices))
        elif d.type == "int":
            step = int(d.step or 1)
            out[d.name] = dist.IntDistribution(
                int(d.low or 0), int(d.high or 0), log=d.log, step=step
            )
        else:
            out[d.name] = dist.FloatDistribution(
                d.low or 0.0, d.high or 0.0, log=d.log, step=d.step
            )
    return out


def override(name: str, value: Any) -> str:
    """``-S`` text that reads back as ``value`` (a string choice stays a string)."""
    return f"{name}={json.dumps(value)}"  # YAML reads JSON: null, true, 0.1, "text" come back


def run(
    root: Path,
    spec: TuneSpec,
    study: optuna.Study,
    *,
    trials: int,
    jobs: int,
    on_result: Callable[[Result], None],
) -> list[Result]:
    """Ask for ``trials`` trials, ``jobs`` at a time, each a pipeline run in a copy."""
    import optuna

    space = distributions(spec)
    deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
    running: list[tuple[optuna.trial.Trial, Path, Any, str]] = []
    results: list[Result] = []
    started = 0
    try:
        while started < trials or running:
            while (
                started < trials
                and len(running) < jobs
                and (deadline is None or time.monotonic() < deadline)
            ):
                trial = study.ask(space)
                started += 1
                name = f"{spec.study}-trial-{trial.number}"
                item = experiments.Queued(
                    name,
                    name,
                    [override(k, v) for k, v in trial.params.items()],
                    list(spec.stages),
                    time.time(),
                )
                tags = json.dumps({"study": spec.study, "trial": str(trial.number)})
                env = {**os.environ, TAGS_ENV: tags, **_pruning_env(root, spec, trial)}
                copy, proc = experiments.start(root, item, env, kind="trial")
                trial.set_user_attr("run_name", name)
                trial.set_user_attr("owner", f"{socket.gethostname()}:{os.getpid()}")
                running.append((trial, copy, proc, name))
            if not running:
                break  # the timeout passed
            trial, copy, proc, name = running.pop(0)
            output, _ = proc.communicate()
            result = _outcome(spec, trial, copy, proc.returncode, name, output)
            experiments.remove_copy(copy)
            state = study._storage.get_trial(trial._trial_id).state
            if state == optuna.trial.TrialState.PRUNED:  # its stage's pruner stopped it
                last = study._storage.get_trial(trial._trial_id).last_step
                result = result._replace(state="pruned", value=None, note=f"at step {last}")
            elif result.state == "complete":
                _tell(study, trial, result.value)
            else:
                _tell(study, trial, None)
            results.append(result)
            on_result(result)
    finally:
        for trial, copy, proc, _ in running:  # interrupted: stop what still runs
            proc.terminate()
            proc.wait()
            experiments.remove_copy(copy)
            _tell(study, trial, None)
    return results


def _tell(study: optuna.Study, trial: Any, value: float | None) -> None:
    """Report a trial's end; one already finished (pruned, or failed by another search's
    resume) keeps its state."""
    import optuna

    try:
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
    except ValueError:
        pass  # "Cannot tell a ... trial": it already ended


def _pruning_env(root: Path, spec: TuneSpec, trial: Any) -> dict[str, str]:
    """What a trial's stages need to report intermediate values (with a pruner only)."""
    from conveyor.tracking import pruning

    if spec.pruner == "none":
        return {}
    return {
        pruning.METRIC_ENV: spec.intermediate or spec.metric,
        pruning.TRIAL_ENV: str(trial._trial_id),
        pruning.STUDY_ENV: spec.study,
        pruning.STORAGE_ENV: engine_url(url_for(root)),
    }


def _outcome(spec: TuneSpec, trial: Any, copy: Path, code: int, name: str, output: bytes) -> Result:
    params = dict(trial.params)
    if code != 0:
        tail = output.decode(errors="replace").strip().splitlines()[-3:]
        return Result(trial.number, "fail", None, params, name, " / ".join(tail))
    values = metrics_mod.read(copy, metrics_mod.metric_files(definition.load(copy)))
    value = values.get(spec.metric)
    if not isinstance(value, int | float) or isinstance(value, bool):
        known = ", ".join(sorted(values)) or "none"
        note = f"metric {spec.metric} not in the metrics files (they hold: {known})"
        return Result(trial.number, "fail", None, params, name, note)
    return Result(trial.number, "complete", float(value), params, name)


def state_of(store: optuna.storages.RDBStorage, spec: TuneSpec) -> optuna.Study:
    import optuna

    try:
        return optuna.load_study(study_name=spec.study, storage=store)
    except KeyError:
        raise ConfigError(
            f"no study {spec.study!r} yet", hint="start one with `conveyor tune`"
        ) from None
