"""A search whose trials run on Ray (``conveyor tune --executor ray``): Optuna asks and is told
here, on the driver, with the study in the project's database as always; each trial is a Ray
task running the pipeline with its params in a working copy on a worker
(:mod:`conveyor.pipeline.ray_trial`). A trial's run record comes back to this project's spool
and its run-cache entries to its run-cache, so ``tune show`` and ``conveyor run`` see trials
as if they had run here. Ray is imported by :mod:`conveyor.pipeline.ray_executor` only.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.data.workspace import Workspace
from conveyor.pipeline.executors import ExecutorSpec, ray_module
from conveyor.pipeline.outs import pointer_meta
from conveyor.pipeline.ray_trial import TrialResult
from conveyor.pipeline.record import KIND_ENV, TAGS_ENV
from conveyor.pipeline.stage import Meta
from conveyor.tune import study as study_mod
from conveyor.tune.spec import TuneSpec

if TYPE_CHECKING:
    import optuna


def run(
    root: Path,
    spec: TuneSpec,
    study: optuna.Study,
    executor: ExecutorSpec,
    *,
    trials: int,
    jobs: int,
    on_result: Callable[[study_mod.Result], None],
) -> list[study_mod.Result]:
    """Ask for ``trials`` trials, ``jobs`` at a time, each a Ray task."""
    import optuna

    from conveyor.pipeline.tracked import out_pointers

    ray_executor = ray_module()
    space = study_mod.distributions(spec)
    deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
    results: list[study_mod.Result] = []
    asked: dict[int, Any] = {}  # trial number -> trial
    with Workspace(root) as ws:
        pool = ray_executor.TrialPool(
            ws,
            address=executor.address,
            remote=executor.remote,
            max_retries=executor.max_retries,
        )
        data: dict[str, Meta] = {}
        for ptr in [*ws.pointers(), *out_pointers(ws)]:
            data[ws.display(ptr.data_path)] = pointer_meta(ptr)
        started = 0
        try:
            pool.start(data)
            while started < trials or pool.busy:
                while (
                    started < trials
                    and pool.busy < jobs
                    and (deadline is None or time.monotonic() < deadline)
                ):
                    trial = study.ask(space)
                    started += 1
                    asked[trial.number] = trial
                    name = f"{spec.study}-trial-{trial.number}"
                    args = [*spec.stages, "--name", name]
                    for key, value in trial.params.items():
                        args += ["-S", study_mod.override(key, value)]
                    env = {
                        KIND_ENV: "trial",
                        TAGS_ENV: json.dumps({"study": spec.study, "trial": str(trial.number)}),
                        **study_mod._pruning_env(root, spec, trial),
                    }
                    trial.set_user_attr("run_name", name)
                    trial.set_user_attr("owner", f"{socket.gethostname()}:{os.getpid()}")
                    pool.submit(trial.number, args, env)
                if not pool.busy:
                    break  # the timeout passed
                for number, got in pool.wait():
                    trial = asked.pop(number)
                    result = _result(spec, trial, got)
                    state = study._storage.get_trial(trial._trial_id).state
                    if state == optuna.trial.TrialState.PRUNED:
                        last = study._storage.get_trial(trial._trial_id).last_step
                        result = result._replace(state="pruned", value=None, note=f"at step {last}")
                    else:
                        study_mod._tell(study, trial, result.value)
                    results.append(result)
                    on_result(result)
        finally:
            pool.stop()
            for trial in asked.values():  # interrupted: what still ran is failed
                study_mod._tell(study, trial, None)
    return results


def _result(spec: TuneSpec, trial: Any, got: TrialResult | str) -> study_mod.Result:
    params = dict(trial.params)
    name = f"{spec.study}-trial-{trial.number}"
    if isinstance(got, str):
        return study_mod.Result(trial.number, "fail", None, params, name, f"lost on Ray: {got}")
    if got.code != 0:
        tail = got.output.strip().splitlines()[-3:]
        return study_mod.Result(trial.number, "fail", None, params, name, " / ".join(tail))
    values = dict(got.metrics)
    value = values.get(spec.metric)
    if not isinstance(value, int | float) or isinstance(value, bool):
        known = ", ".join(sorted(values)) or "none"
        note = f"metric {spec.metric} not in the metrics files (they hold: {known})"
        return study_mod.Result(trial.number, "fail", None, params, name, note)
    return study_mod.Result(trial.number, "complete", float(value), params, name)
