"""Remotes by name: the configured remote a command asks for, with the backend its URL needs.

A folder (a plain path or ``file://``) gets :class:`~conveyor.data.remote_local.LocalRemote`,
everything else :class:`~conveyor.data.remote_fsspec.FsspecRemote`. Both are imported only when a
remote is opened, so ``conveyor --help`` never loads fsspec; the interface they implement lives
in :mod:`conveyor.data.remote`, which imports neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.data.remote import Remote, RemoteSpec
from conveyor.foundation.errors import ConfigError
from conveyor.foundation.suggest import did_you_mean

if TYPE_CHECKING:
    from conveyor.data.workspace import Workspace
    from conveyor.foundation.config import Config


def resolve(config: Config, root: Path, name: str | None = None) -> RemoteSpec:
    """The remote called ``name``, or the default one (``core.remote``)."""
    chosen = name or config.get("core.remote")
    remotes = config.remotes()
    if not chosen:
        known = ", ".join(sorted(remotes))
        raise ConfigError(
            "no remote given and no default remote set"
            + (f" (configured: {known})" if known else ""),
            hint="pass -r NAME, or set a default with `conveyor remote default NAME`"
            if known
            else "add one with `conveyor remote add --default NAME URL`",
        )
    if chosen not in remotes:
        known = ", ".join(sorted(remotes)) or "none configured"
        where = "" if name else " (the default, core.remote)"
        raise ConfigError(
            f"unknown remote {chosen!r}{where}; known: {known}",
            hint=did_you_mean(chosen, remotes) or f"add it with `conveyor remote add {chosen} URL`",
        )
    options = dict(remotes[chosen])
    url = options.pop("url", None)
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            f"remote {chosen!r} has no url", hint=f"conveyor remote add --force {chosen} URL"
        )
    return RemoteSpec.of(chosen, url.strip(), options, root=root)


def open_remote(
    ws: Workspace, name: str | None = None, *, jobs: int | None = None, under: str | None = None
) -> Remote:
    """Open the remote called ``name`` (default: ``core.remote``) of the workspace ``ws``.

    ``jobs`` bounds the parallel requests the remote makes on its own (existence checks).
    ``under`` opens its subfolder of that name instead, a store of its own (see
    :meth:`RemoteSpec.under`).
    """
    spec = resolve(ws.config, ws.root, name)
    if under is not None:
        spec = spec.under(under)
    return open_spec(spec, jobs=jobs or ws.jobs)


def open_spec(spec: RemoteSpec, *, jobs: int) -> Remote:
    """The remote ``spec`` describes, with the backend its URL needs (a Ray worker opens the
    driver's remote this way: it has the spec, not the project's config)."""
    if spec.protocol == "file":
        from conveyor.data.remote_local import LocalRemote

        return LocalRemote(spec, jobs=jobs)
    from conveyor.data.remote_fsspec import FsspecRemote

    return FsspecRemote(spec, jobs=jobs)
