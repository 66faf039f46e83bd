"""The one interface protocol code asks for an answer: a :class:`Predictor`.

OIP v2 and MLflow scoring code (:mod:`conveyor.serve.endpoints`) never reach past it: they ask a
predictor what it serves (:meth:`Predictor.require`) and for a prediction
(:meth:`Predictor.predict`), and read in the :class:`Prediction` which version answered, in which
role. A loaded version (:class:`conveyor.serve.served.Served`) is a predictor; a router that
splits traffic between a stable and a candidate version (weighted, sticky by request key, or
shadowing) is one too, wrapping two of them, and the protocol code does not change.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

if TYPE_CHECKING:
    from conveyor.registry.package import Model
    from conveyor.registry.signature import Signature

Role = Literal["stable", "candidate", "shadow"]
ROLES: tuple[Role, ...] = ("stable", "candidate", "shadow")


class Version(NamedTuple):
    """One loaded model version."""

    number: str  # the registry's version, or "local" for a package folder
    model: Model
    package: str  # the package hash, or its folder

    @property
    def signature(self) -> Signature | None:
        return self.model.signature

    @property
    def output(self) -> str:
        sig = self.model.signature
        return sig.outputs[0].name if sig and sig.outputs else "output"

    @property
    def flavor(self) -> str:
        return str(self.model.manifest.get("flavor", ""))

    @classmethod
    def local(cls, folder: str, model: Model) -> Version:
        return cls("local", model, str(Path(folder).resolve()))


class Prediction(NamedTuple):
    version: str  # the version that answered
    outputs: Any  # this request's rows of the model's output
    role: Role = "stable"  # the role of the version that answered


class Predictor(Protocol):
    """Answers for one model name.

    ``predict`` is called on the event loop, concurrently; it must not block it for longer than
    a model call. ``version`` and ``ready`` are read on every request: plain attribute reads.
    """

    @property
    def name(self) -> str:
        """The model's name, as a client names it in ``/v2/models/{name}``."""
        ...

    @property
    def role(self) -> Role:
        """The role of the version that answers by default (a router: ``stable``)."""
        ...

    @property
    def version(self) -> str | None:
        """The version that answers by default now; None until one is loaded."""
        ...

    @property
    def ready(self) -> bool: ...

    def require(self) -> Version:
        """The version that answers by default, for its signature and metadata; NotReady
        (:mod:`conveyor.serve.errors`) until one is loaded."""
        ...

    async def predict(
        self, data: Any, *, timeout: float | None = None, key: str | None = None
    ) -> tuple[Any, Prediction]:
        """``data`` as the model took it (checked against its signature) and its prediction.
        ``key`` (the request id) lets a router send a client's requests to one version."""
        ...
