"""Projects for the deploy tests: a model ``clf`` with python-flavor versions that answer by
``x0 > 0``, one of which can be made to fail every fifth call, and an environment in
conveyor.yaml. Registered through the real CLI, in-process (fast) or as processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# {name}: a module name unique to the version: every version's code folder goes on sys.path of
# one process, and a second module of one name would be the first one again.
CODE = """\
import threading
import time

import numpy as np


class Model:
    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def predict(self, x):
        with self.lock:
            self.calls += 1
            calls = self.calls
        if {fail_every} and calls % {fail_every} == 0:
            raise RuntimeError("a deliberately failing version")
        if {delay}:
            time.sleep({delay})
        x = np.asarray(x, dtype=float)
        answer = (x[:, 0] > 0).astype(int)
        # wrong where 0 < x0 < {wrong}: about 10 % of standard normal rows for 0.25
        answer = np.where((x[:, 0] > 0) & (x[:, 0] < {wrong}), 1 - answer, answer)
        return 1 - answer if {flipped} else answer


def load(folder):
    return Model()
"""

ENV = """\
deploy:
  production:
    model: clf
    serve: {{candidate: {candidate}}}
    strategy:
      canary:
        steps:
          - {{weight: 20}}
          - {{pause: {pause}}}
          - {{weight: 50}}
          - {{pause: {pause}}}
          - {{weight: 100}}
    analysis:
      interval: {interval}
      failure_limit: 1
      deadline: {deadline}
      checks:
{checks}"""
SHADOW = """\
deploy:
  production:
    model: clf
    strategy:
      shadow: {{fraction: 1.0, min_agreement: {min_agreement}, duration: 2s}}
    analysis:
      interval: {interval}
      deadline: 60s
{checks}"""
ERROR_RATE = "        - {{metric: error_rate, max_increase: 0.05, min_samples: {min_samples}}}\n"

EXAMPLE = np.array([[0.5, 1.0, -1.0], [-0.5, 0.0, 2.0]])


def package(root: Path, folder: str, *, fail_every: int = 0, delay: float = 0.0,
            flipped: bool = False, wrong: float = 0.0) -> Path:  # fmt: skip
    """A python-flavor package at ``root/folder`` whose code module is named after it."""
    from conveyor import models

    module = f"clf_{folder}_{root.name}".replace("-", "_")
    code = root / "src" / f"{module}.py"
    code.parent.mkdir(parents=True, exist_ok=True)
    code.write_text(CODE.format(fail_every=fail_every, delay=delay, flipped=flipped, wrong=wrong))
    return models.save(
        None, root / folder, flavor="python", loader=f"{module}:load", code=[code],
        example=EXAMPLE, name="clf",
    )  # fmt: skip


def environment(
    *,
    pause: str = "1s",
    interval: str = "1s",
    deadline: str = "60s",
    min_samples: int = 20,
    checks: tuple[str, ...] = (),
    candidate: str = "auto",
) -> str:
    """The production environment; ``checks`` (YAML flow mappings) replace the error rate's."""
    listed = "".join(f"        - {c}\n" for c in checks) or ERROR_RATE.format(
        min_samples=min_samples
    )
    return ENV.format(
        pause=pause, interval=interval, deadline=deadline, checks=listed, candidate=candidate
    )


def shadow_environment(
    *, min_agreement: float = 0.95, interval: str = "500ms", checks: str | None = None
) -> str:
    """Production as a shadow of every request for 2 s; ``checks`` (a YAML flow list) replaces
    the default ones."""
    listed = "" if checks is None else f"      checks: {checks}\n"
    return SHADOW.format(min_agreement=min_agreement, interval=interval, checks=listed)
