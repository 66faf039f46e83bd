"""Starting the server: check what it will serve, bind the socket, run uvicorn.

With ``workers > 1`` uvicorn starts that many processes sharing the socket; each builds its own
:class:`~conveyor.serve.app.App` from the options this process puts in the environment.

``run(..., env=ENV, model=MODEL)`` serves an environment instead of model URIs: its deployment
record (read every ``Options.deploy_interval`` by each worker) says which versions answer and
how traffic is split; ``model`` defaults to the one the record names.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.foundation.errors import ConfigError
from conveyor.foundation.paths import CONTROL_DIR, find_root
from conveyor.serve import workers as workers_metrics
from conveyor.serve.admin import Act
from conveyor.serve.app import App
from conveyor.serve.errors import CannotServe
from conveyor.serve.options import Options

if TYPE_CHECKING:
    from conveyor.serve.host import Hosting

_ENV = "CONVEYOR_SERVE_CONFIG"
_HINT = "fix the package (or serve another version); `conveyor models show` says what it holds"


def check(uris: list[str]) -> Path | None:
    """The project root (None outside a project); a clear error for a URI naming nothing."""
    from conveyor.foundation.errors import NotAProjectError
    from conveyor.registry import package

    registered = [u for u in uris if u.startswith("models:/")]
    try:
        root: Path | None = find_root()
    except NotAProjectError:
        if registered:
            raise
        root = None
    for uri in uris:
        if not uri.startswith("models:/"):
            package.read_manifest(Path(uri))
    if registered:
        from conveyor.registry.stored import resolve

        assert root is not None
        for uri in registered:
            resolve(root, uri)
    return root


def environment_model(root: Path, env: str) -> str:
    """The model an environment's deployment record names; CannotServe when it has none."""
    from conveyor.serve.follow import stored_deployment

    record = stored_deployment(root, env)
    if record is None:
        raise CannotServe(
            f"environment {env} has no deployment yet, and no model was named for it",
            hint=f"`conveyor deploy MODEL --env {env}` first, or name the model to serve",
        )
    return record.model


def default_log_dir(root: Path | None) -> str | None:
    return str(root / CONTROL_DIR / "predictions") if root else None


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="choose another --port (or stop what is using it)",
        ) from exc
    sock.listen(2048)  # clients queue from now on, while uvicorn and the models start
    sock.set_inheritable(True)
    return sock


def run(
    uris: list[str],
    *,
    root: Path | None,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    options: Options | None = None,
    env: str | None = None,
    model: str | None = None,
    supervised: bool = False,
    hosting: Hosting | None = None,
    sock: socket.socket | None = None,
    factory: str = "conveyor.serve.server:from_environment",
    act: Act | None = None,
) -> None:
    """Serve ``uris`` (or with ``env``, that environment of the project at ``root``, whose
    model is ``model`` or the record's) until Ctrl-C or SIGTERM. ``supervised`` runs even one
    worker in a process of its own, under uvicorn's supervisor: this process then does other
    work (a rollout controller's) without taking the interpreter from the request path.
    ``hosting`` (with ``env``) answers the rollout's candidate from a process of its own, which
    this one starts and supervises beside the workers; ``sock`` is a socket already bound.
    ``factory`` names the function that makes a worker's app (a higher layer's, to give it
    more), ``act`` the rollout actions of a server run in this process."""
    import uvicorn

    options = options or Options()
    if env is not None:
        if root is None:
            raise CannotServe(f"environment {env} is served from a project", hint="cd into it")
        model = model or environment_model(root, env)
    sock = sock or bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    _notify(f"listening on http://{shown}:{sock.getsockname()[1]} (Ctrl-C stops)")
    settings: dict[str, Any] = {
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 5,
        "server_header": False,
        "proxy_headers": False,  # nothing here reads the client's address
    }
    if hosting is not None:
        supervised = True
        options = replace(options, candidate_socket=hosting.socket)
        os.environ.update(hosting.environment())
    if workers <= 1 and not supervised:
        app = App(uris, root=root, options=options, notify=_notify, env=env, model=model, act=act)
        server = uvicorn.Server(uvicorn.Config(app, **settings))
        app.on_failure = lambda _reason: setattr(server, "should_exit", True)
        server.run(sockets=[sock])
        if app.failed:
            raise CannotServe(app.failed, hint=_HINT)
        return
    os.environ[_ENV] = json.dumps(
        {
            "uris": uris,
            "root": str(root) if root else None,
            "options": asdict(options),
            "env": env,
            "model": model,
        }
    )
    config = uvicorn.Config(factory, factory=True, workers=workers, **settings)
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    supervisor = Multiprocess(config, sockets=[sock])
    # /metrics answers the sum over workers (and the candidate's process); one worker's
    # metrics are all there is
    shared = workers > 1 or hosting is not None
    with workers_metrics.sharing(root) if shared else contextlib.nullcontext():
        if hosting is not None:
            hosting.start()  # in the folder's environment: its metrics are summed in
        try:
            supervisor.run()
        finally:
            if hosting is not None:
                hosting.close()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise CannotServe("a worker could not load its models (why is printed above)", hint=_HINT)


def from_environment(actions: Callable[[Path], Act] | None = None) -> App:
    """The app of one worker process (uvicorn's factory); ``actions`` gives the rollout
    actions for its project's root."""
    raw = os.environ.get(_ENV)
    if not raw:
        raise CannotServe(f"{_ENV} is not set: start workers with `conveyor serve --workers N`")
    config = json.loads(raw)
    root = Path(config["root"]) if config["root"] else None
    return App(
        config["uris"],
        root=root,
        options=Options(**config["options"]),
        notify=_notify,
        on_failure=_worker_failed,
        env=config.get("env"),
        model=config.get("model"),
        serve_when_loaded=True,  # a worker still loading must not take a sibling's requests
        act=actions(root) if actions is not None and root is not None else None,
    )


def _worker_failed(reason: str) -> None:
    """A worker's models cannot be loaded: stop it with uvicorn's start-up failure code, on
    which the supervisor stops every worker instead of starting this one again (it has not
    answered a prediction, so there is nothing to finish gracefully)."""
    from uvicorn.config import STARTUP_FAILURE

    _notify(f"error: {reason}")
    os._exit(STARTUP_FAILURE)


def _notify(message: str) -> None:
    print(f"conveyor serve: {message}", file=sys.stderr, flush=True)
