"""The optional parts of an install, and the one error a missing part raises.

``pip install conveyor`` (or ``conveyor[serve]``) serves models, reads the registry, runs
rollouts and monitors; the training stack (pipeline plots, tuning, gates on tables, reports,
migrations of the metadata store) comes with extras. A command that needs what
an install leaves out stops with :class:`MissingExtra` naming the extra to install, never
with a traceback:

    >>> require("json", purpose="reading JSON").__name__
    'json'
    >>> require("optuna_is_not_here", purpose="tuning", extra="train")  # doctest: +SKIP
    MissingExtra: tuning needs optuna_is_not_here, which this install of conveyor leaves out

:data:`EXTRAS` mirrors ``[project.optional-dependencies]`` in pyproject.toml (a test holds
them together).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from conveyor.foundation.errors import ConveyorError

# extra -> the modules it brings that conveyor imports (by import name). conveyor[serve] only
# adds uvloop, which uvicorn picks up by itself: conveyor never imports it.
EXTRAS: dict[str, tuple[str, ...]] = {
    "tables": ("pandas",),
    # The monitor needs nothing beyond the core (numpy: its statistics are conveyor's own);
    # the extra stays, empty, so that conveyor[serve,monitor] still installs.
    "monitor": (),
    "train": ("alembic", "matplotlib", "optuna", "pandas", "scipy"),
}
# The extra named when the caller does not say which: the training stack (it holds pandas and
# scipy too), since a command that is not serving is a training one.
DEFAULT_EXTRA = "train"


class MissingExtra(ConveyorError):
    """A Python package this install of conveyor leaves out is needed."""


def require(module: str, *, purpose: str, extra: str | None = None) -> ModuleType:
    """Import ``module``; a :class:`MissingExtra` naming ``extra`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raised = missing(exc, purpose=purpose, extra=extra, module=module)
        if raised is None:
            raise
        raise raised from None


def check(
    extra: str,
    *,
    purpose: str,
    modules: tuple[str, ...] | None = None,
    hint: str | None = None,
) -> None:
    """Raise :class:`MissingExtra` unless every module of ``extra`` (or those of them named in
    ``modules``) can be imported: found, not imported, so checking costs no start-up time."""
    absent = [m for m in modules or EXTRAS[extra] if not _found(m)]
    if absent:
        raise _error(absent, purpose=purpose, extra=extra, hint=hint)


def missing(
    exc: ModuleNotFoundError,
    *,
    purpose: str,
    extra: str | None = None,
    module: str | None = None,
) -> MissingExtra | None:
    """``exc`` as a :class:`MissingExtra` when it is about a package an extra brings or about
    ``module``, the one the caller asked for; None for anything else (a bug, or a user's own
    module), which the caller re-raises. It names ``extra`` when that brings the package, else
    the training stack (which holds every package the other extras bring)."""
    top = (exc.name or "").partition(".")[0]
    wanted = module.partition(".")[0] if module else None
    known = {m for modules in EXTRAS.values() for m in modules}
    if not top or (top != wanted and top not in known):
        return None
    if extra is None or (top != wanted and top not in EXTRAS[extra]):
        extra = DEFAULT_EXTRA  # the extra named would not bring it
    return _error([top], purpose=purpose, extra=extra)


def _error(
    modules: list[str], *, purpose: str, extra: str, hint: str | None = None
) -> MissingExtra:
    names = " and ".join(modules)  # each import name is its distribution's
    return MissingExtra(
        f"{purpose} needs {names}, which this install of conveyor leaves out",
        hint=hint or f"install the extra that brings it: pip install 'conveyor[{extra}]'",
    )


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a broken parent package
        return False
