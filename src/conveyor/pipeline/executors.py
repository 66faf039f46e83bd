"""Which executor runs the stages: the ``executor:`` section of conveyor.yaml and ``--executor``.

```yaml
executor: ray                    # local (the default), ray, or ray://HOST:PORT
# or, with its settings:
executor:
  type: ray
  address: ray://head:10001      # absent: $RAY_ADDRESS, else a local Ray started for the run
  remote: store                  # where stage data travels (default: core.remote)
  max_retries: 3                 # a stage whose node is lost runs again, at most this often
```

``conveyor run --executor ray|ray://HOST:PORT|local`` overrides the type and address and keeps
the rest. Parsing is pure; :func:`open_executor` builds the executor, importing Ray only for a
Ray executor (``conveyor --help`` and a local run never load it). Importing this module
registers the section with :mod:`conveyor.foundation.project`.

>>> choice("ray://head:10001", "--executor")
ExecutorSpec(type='ray', address='ray://head:10001', remote='', max_retries=3)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation import project
from conveyor.foundation.errors import ConfigError, PipelineError
from conveyor.foundation.suggest import did_you_mean

if TYPE_CHECKING:
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.yamlio import Located
    from conveyor.pipeline.executor import Executor, Sink

SECTION = "executor"
TYPES = ("local", "ray")
KEYS = ("type", "address", "remote", "max_retries")
EXTRA = "ray"  # pip install 'conveyor[ray]'
_EXAMPLE = "executor: {type: ray, address: ray://head:10001, remote: store, max_retries: 3}"
_CHOICES = "local, ray, or ray://HOST:PORT"


@dataclass(frozen=True)
class ExecutorSpec:
    type: str = "local"
    address: str = ""  # for ray: "" is $RAY_ADDRESS, else a local Ray started for the run
    remote: str = ""  # the remote stage data goes through; "" is core.remote
    max_retries: int = 3  # reruns of a stage whose node (or worker process) is lost


def choice(text: str, where: str) -> ExecutorSpec:
    """``local``, ``ray`` or ``ray://HOST:PORT`` as written on the command line or as the
    section's one-word form; ``where`` starts the message of a mistake."""
    value = text.strip()
    if value in TYPES:
        return ExecutorSpec(value)
    if value.startswith("ray://") and len(value) > len("ray://"):
        return ExecutorSpec("ray", value)
    raise ConfigError(
        f"{where}: {text!r} is not an executor ({_CHOICES})",
        hint=did_you_mean(value, TYPES) or f"write one of {_CHOICES}",
    )


def _schema() -> Any:
    from pydantic_core import SchemaValidator
    from pydantic_core import core_schema as cs

    from conveyor.foundation.validation import field

    schema = cs.typed_dict_schema(
        {
            "type": field(cs.literal_schema(list(TYPES)), "ray"),
            "address": field(cs.str_schema(strict=True), ""),
            "remote": field(cs.str_schema(strict=True), ""),
            "max_retries": field(cs.int_schema(strict=True, ge=0, le=100), 3),
        },
        extra_behavior="forbid",
    )
    return SchemaValidator(schema), schema


def parse(raw: Any, doc: Located, root: Path | None = None) -> ExecutorSpec:
    """The section as written: one word, or a mapping of :data:`KEYS`."""
    from conveyor.foundation.validation import validate

    if isinstance(raw, str):
        return choice(raw, f"{doc.where(SECTION)}: executor")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{doc.where(SECTION)}: 'executor' is {_CHOICES}, or a mapping", hint=_EXAMPLE
        )
    validator, schema = _schema()
    values = validate(
        validator, schema, raw, lambda keys: doc.where(SECTION, *keys), label="executor"
    )
    spec = ExecutorSpec(
        values["type"], values["address"].strip(), values["remote"].strip(), values["max_retries"]
    )
    if spec.address and (spec.type != "ray" or not spec.address.startswith("ray://")):
        raise ConfigError(
            f"{doc.where(SECTION, 'address')}: executor: address {spec.address!r} is not "
            "ray://HOST:PORT (a Ray cluster's client address)",
            hint="leave it out to use $RAY_ADDRESS or a local Ray, or write ray://HOST:10001",
        )
    return spec


def resolve(root: Path, override: str = "") -> ExecutorSpec:
    """conveyor.yaml's ``executor:`` (local when absent), with ``--executor`` applied."""
    configured: ExecutorSpec | None = project.section(root, SECTION)
    spec = configured or ExecutorSpec()
    if override:
        chosen = choice(override, "--executor")
        spec = replace(spec, type=chosen.type, address=chosen.address)
    return spec


def open_executor(ws: Workspace, spec: ExecutorSpec, jobs: int, sink: Sink) -> Executor:
    """The executor ``spec`` names; ``jobs`` bounds the stages at once (0: the local pool
    uses one per core, Ray as many as the cluster's resources allow)."""
    import os

    from conveyor.pipeline.executor import LocalPool

    if spec.type == "local":
        return LocalPool(jobs or os.cpu_count() or 1, sink)
    executor: Executor = ray_module().RayExecutor(
        ws,
        sink,
        address=spec.address,
        remote=spec.remote,
        max_retries=spec.max_retries,
        jobs=jobs,
    )
    return executor


def ray_module() -> Any:
    """:mod:`conveyor.pipeline.ray_executor`, or an error saying which extra installs Ray."""
    try:
        from conveyor.pipeline import ray_executor
    except ImportError as exc:
        if exc.name != "ray" and not (exc.name or "").startswith("ray."):
            raise
        raise PipelineError(
            "the Ray executor needs Ray, which is not installed",
            hint=f"pip install 'conveyor[{EXTRA}]' (or run with --executor local)",
        ) from None
    return ray_executor


project.register(SECTION, parse, owner=__package__ or "")
