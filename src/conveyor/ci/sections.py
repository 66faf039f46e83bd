"""Every section of ``conveyor.yaml`` checked together, before a flow judges the project.

Each layer registers the parser of its section when its config module is imported
(:mod:`conveyor.foundation.project`), so a process checks only the sections of the layers it
imports: a model server never compiles ``stages:``. The flows that judge a whole project
(``conveyor check``, the CI job) sit above every layer, import them all and check the file
first, so one run names every mistake in it (a stage, a gate, the tune space, a model) with
its line, instead of one per attempt, and before a long pipeline run.
"""

from __future__ import annotations

from pathlib import Path


def check(root: Path) -> None:
    """Raise one :class:`~conveyor.foundation.errors.ConfigError` listing every mistake in the
    project's conveyor.yaml, in line order; return when there is none (or no file)."""
    import conveyor.deploy.config
    import conveyor.gates.config
    import conveyor.monitor.config
    import conveyor.pipeline.definition
    import conveyor.pipeline.executors
    import conveyor.registry.config
    import conveyor.tune.spec  # noqa: F401  (each registers its section on import)
    from conveyor.foundation import project

    project.check(root)
