"""``python -m conveyor.pipeline [STAGE...] [--name NAME] [-S KEY=VALUE...]``: check the data
out and run the pipeline, in the working directory's project. A queued experiment runs this way
in its own copy of the workspace; it prints one line per stage event and per line of stage
output, and exits 1 when a stage failed (an error's own exit code on a mistake)."""

from __future__ import annotations

import argparse
import sys
import threading

from conveyor.foundation.errors import ConveyorError
from conveyor.pipeline.runner import StageResult


class _Lines:
    """Stage output and events as plain lines: the parent process prefixes and relays them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def line(self, stage: str, text: str, err: bool) -> None:
        with self._lock:
            print(f"{stage} | {text}", flush=True)

    def event(self, result: StageResult) -> None:
        why = f" ({'; '.join(result.reasons)})" if result.reasons else ""
        with self._lock:
            print(f"{result.name} {result.status}{why}", flush=True)
            if result.status == "failed" and result.tail:
                for line in result.tail.rstrip().splitlines():
                    print(f"    {line}", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m conveyor.pipeline")
    parser.add_argument("stages", nargs="*")
    parser.add_argument("--name", default="")
    parser.add_argument("-S", dest="overrides", action="append", default=[])
    opts = parser.parse_args(argv)
    try:
        return _run(opts.stages, opts.overrides, opts.name)
    except ConveyorError as exc:
        from conveyor.foundation.redact import mask_urls

        print(f"error: {mask_urls(exc.message)}", flush=True)
        if exc.hint:
            print(f"  hint: {mask_urls(exc.hint)}", flush=True)
        return exc.exit_code


def _run(stages: list[str], overrides: list[str], name: str) -> int:
    from conveyor.data.checkout import checkout
    from conveyor.data.workspace import writing
    from conveyor.pipeline import launch
    from conveyor.pipeline.planner import Options
    from conveyor.pipeline.tracked import out_pointers

    with writing("conveyor run") as ws:
        checkout(ws, [*ws.pointers(), *out_pointers(ws)])
        pipeline = launch.load(ws, overrides)
        launched = launch.run(
            ws,
            pipeline,
            # Local: a queued experiment or a trial is already one job (a trial on a Ray worker)
            Options(tuple(stages), executor="local"),
            _Lines(),
            overrides=overrides,
            name=name,
        )
    problem = launch.publish(ws.root)
    if problem is not None:
        from conveyor.foundation.redact import mask_urls

        said = mask_urls(problem.message)
        print(f"warning: the run waits in .conveyor/spool until the store answers: {said}")
    counts = ", ".join(f"{n} {status}" for status, n in launched.counts().items())
    print(f"{len(launched.results)} stage(s): {counts}", flush=True)
    return 1 if launched.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
