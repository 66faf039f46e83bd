"""The server's ASGI app: its life (load, follow, stop), and for each request the route, the
request id, the headers every answer carries, and the metrics.

Every response carries ``x-request-id`` (the client's, or a new one), ``x-model-version`` and
``x-model-role`` (the version that answered and its role; for an error, the one the path names;
for other endpoints, the first model's). A request the app cannot read is answered with a 4xx
and never reaches the model; one that fails inside the model is answered alone (see
:mod:`conveyor.serve.batching`). The endpoints themselves are :mod:`conveyor.serve.endpoints`';
which version each model serves is :mod:`conveyor.serve.follow`'s.

The app serves either model URIs (each a :class:`~conveyor.serve.served.Served`, an alias
followed), or with ``env`` an environment: one :class:`~conveyor.serve.router.Router` for its
model, splitting traffic between stable and candidate as the environment's deployment record
says, followed every ``Options.deploy_interval``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from conveyor.registry.uris import parse_uri
from conveyor.serve import memory
from conveyor.serve.admin import Act
from conveyor.serve.catalog import Catalog
from conveyor.serve.endpoints import Endpoints
from conveyor.serve.errors import CannotServe, NotAllowed, NotFound, RequestError
from conveyor.serve.exchange import REQUEST_ID, Ids, Request, error
from conveyor.serve.follow import (
    DeploymentFollower,
    Follower,
    ReadDeployment,
    deployment_state,
    stored_deployment,
)
from conveyor.serve.metrics import Metrics
from conveyor.serve.options import Options
from conveyor.serve.predictor import Predictor, Role
from conveyor.serve.predlog import PredictionLog
from conveyor.serve.remote import Link, Remote, host_token
from conveyor.serve.router import Router
from conveyor.serve.served import Served

__all__ = ["App", "Options"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class App:
    def __init__(
        self,
        uris: list[str],
        *,
        root: Path | None,
        options: Options | None = None,
        notify: Callable[[str], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
        env: str | None = None,
        model: str | None = None,
        read_deployment: ReadDeployment | None = None,
        serve_when_loaded: bool = False,
        act: Act | None = None,
    ) -> None:
        """Serve ``uris``; or, with ``env`` (and its ``model``), that environment of the project
        at ``root`` as its deployment record says (``read_deployment`` reads it: the store's
        by default). With ``serve_when_loaded`` (one of several workers sharing a socket) the
        app completes its start-up only once the models are loaded, so that the worker takes no
        connection before it can answer: its siblings, or the socket's queue, take them.
        ``act`` steers the environment's rollouts (``POST /deployments/{env}/{action}``)."""
        self.serve_when_loaded = serve_when_loaded
        self._loaded = asyncio.Event()
        self.options = options = options or Options()
        self.root = root
        self.env = env
        self.metrics = Metrics()
        self.notify = notify or (lambda _message: None)
        # Called once, with the reason, when a model cannot be loaded at start-up: nothing
        # loaded before would serve in its place, and retrying would only hide the mistake.
        self.on_failure = on_failure or (lambda _reason: None)
        self.failed: str | None = None
        self.read_deployment = read_deployment or stored_deployment
        self.served = [self._served(uri) for uri in uris] if env is None else []
        self.deployer: DeploymentFollower | None = None
        self.link: Link | None = None
        predictors: list[Predictor] = list(self.served)
        if env is not None:
            if uris or model is None or root is None:
                raise CannotServe(
                    f"serving environment {env} needs its model, a project, and no model URIs",
                    hint="`conveyor serve --env ENV` inside the project, without URIs",
                )
            if options.candidate_socket:  # a candidate answers from its own process
                self.link = Link(options.candidate_socket, host_token())
            router = Router(
                self._served(f"models:/{model}@{env}"),
                metrics=self.metrics,
                max_copies=options.max_shadow_copies,
            )
            self.deployer = DeploymentFollower(
                router,
                root=root,
                env=env,
                model=model,
                make=self._slot,
                interval=options.deploy_interval,
                notify=self.notify,
                read=self.read_deployment,
            )
            predictors = [router]
            self.metrics.monitor(root, env)  # the monitor's gauges, in /metrics
        self.catalog = Catalog(predictors)
        self.log = (
            PredictionLog(
                Path(options.log_dir),
                rate=options.log_rate,
                buffer_bytes=options.log_buffer_bytes,
                notify=self.notify,
            )
            if options.log_dir and options.log_rate > 0
            else None
        )
        deployments = self._deployment if root is not None else None
        endpoints = Endpoints(self.catalog, options, self.metrics, self.log, deployments, act)
        self.routes = endpoints.table()
        self.shared = endpoints.shared
        self.feedback = endpoints.feedback
        self.follower = Follower(self.served, interval=options.reload_interval, notify=self.notify)
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = Ids()

    def _served(self, uri: str, role: Role = "stable") -> Served:
        options = self.options
        return Served(
            uri,
            self.root,
            self.metrics,
            role=role,
            max_batch_size=options.max_batch_size,
            max_latency_ms=options.max_latency_ms,
            max_rows=options.max_rows,
        )

    def _slot(self, uri: str, role: Role = "candidate") -> Served | Remote:
        """Where a candidate version is loaded: the candidate's own process when the server
        has one, else here."""
        if self.link is None or role == "stable":
            return self._served(uri, role)
        return Remote(uri, parse_uri(uri).name, self.link, self.metrics, role=role)

    def _deployment(self, env: str) -> dict[str, Any] | None:
        assert self.root is not None
        deployer = self.deployer
        serving = deployer.serving() if deployer is not None and env == self.env else None
        return deployment_state(self.root, env, self.read_deployment, serving)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    # -- life ----------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                if self.serve_when_loaded:  # uvicorn accepts connections once this returns
                    await self._loaded.wait()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        """Load the models in the background (``/v2/health/ready`` says when), then follow
        what they should serve; a model that cannot be loaded makes :attr:`failed` say why and
        calls ``on_failure``."""
        memory.keep_freed_memory()
        self._tasks = [asyncio.get_running_loop().create_task(self._run())]
        if self.shared is not None:
            self._tasks.append(asyncio.get_running_loop().create_task(self.shared.run()))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for served in self.served:
            served.close()
        if self.deployer is not None:
            self.deployer.close()
        if self.link is not None:
            self.link.close()
        if self.log is not None:
            self.log.close()
        if self.shared is not None:
            self.shared.close()
        self.feedback.close()

    async def _run(self) -> None:
        follower: Follower | DeploymentFollower = self.deployer or self.follower
        self.failed = await follower.first()
        self._loaded.set()
        if self.failed is not None:
            self.on_failure(self.failed)
            return
        await follower.run()  # only now: a first load is not a reload

    @property
    def ready(self) -> bool:
        return self.catalog.ready

    # -- requests ------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id")
        rid = given.decode("latin-1") if given else ""
        own = bool(rid) and REQUEST_ID.fullmatch(rid) is not None
        if not own:
            rid = self._ids.new()
        path: str = scope["path"]
        method: str = scope["method"]
        found = self.routes.match(path)
        # The metrics' labels are known before the work, so that failures count too; the model
        # label only ever holds a served model's name (a client must not add values at will).
        endpoint, name, scoring_body = "other", "", False
        # Who answers when the reply does not say (an error, a server endpoint): the model (and
        # version) the path names, else the server's first.
        fallback = self.catalog.default
        try:
            if found is None:
                hint = None if path.startswith("/v2") else "see GET /openapi.json for the endpoints"
                raise NotFound(f"no endpoint {path}", hint=hint)
            route, params = found
            endpoint, scoring_body = route.endpoint, route.scoring
            if endpoint == "invocations":
                name = fallback.name if fallback is not None else ""
            elif params.get("name", "") in self.catalog:
                name = params["name"]
                fallback = self.catalog.answering(name, params.get("version"))
            try:
                handler = route.handler(method)
            except NotAllowed:
                if "name" in params:  # no such model or version is a 404 whatever the method
                    self.catalog.find(params["name"], params.get("version"))
                raise
            reply = await handler(Request(method, path, params, headers, receive, rid, own))
        except RequestError as exc:
            reply = error(exc, scoring_body=scoring_body)
        except Exception as exc:  # a bug must cost one request, not the server
            failure = RequestError(f"internal error: {type(exc).__name__}: {exc}")
            reply = error(failure, scoring_body=scoring_body)._replace(status=500)
        if reply.request_id is not None:
            rid = reply.request_id
        version, role = reply.version, reply.role
        if version is None:
            version = (fallback.version if fallback is not None else None) or ""
        if role is None:
            role = fallback.role if fallback is not None else "stable"
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type),
                    (b"content-length", str(len(reply.body)).encode()),
                    (b"x-request-id", rid.encode()),
                    (b"x-model-version", version.encode()),
                    (b"x-model-role", role.encode()),
                    *reply.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})
        if name:
            seconds = time.perf_counter() - start
            self.metrics.request(name, version, endpoint, reply.status, seconds, role)
