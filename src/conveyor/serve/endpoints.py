"""The server's endpoints and their route table.

    GET  /v2/health/live, /v2/health/ready, /v2            Open Inference Protocol v2
    GET  /v2/models/{name}[/versions/{version}][/ready]
    POST /v2/models/{name}[/versions/{version}]/infer
    POST /invocations; GET /ping, /health, /version        MLflow's scoring protocol
    GET  /metrics                                          Prometheus text format
    GET  /deployments/{env}                                an environment's record and analysis
    POST /deployments/{env}/{action}                       promote, pause, resume, abort,
                                                           rollback (a token)
    POST /feedback                                         true labels by request id (a token)
    GET  /openapi.json                                     this API, described

Protocol code asks the :class:`~conveyor.serve.catalog.Catalog` for a
:class:`~conveyor.serve.predictor.Predictor` and the predictor for an answer; it never knows
whether one loaded version or a router over two answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.serve import openapi, scoring, v2
from conveyor.serve.admin import Act, Admin
from conveyor.serve.catalog import Catalog
from conveyor.serve.errors import NotFound, NotReady, RequestError
from conveyor.serve.exchange import (
    REQUEST_ID,
    TEXT,
    Reply,
    Request,
    as_json,
    read_body,
)
from conveyor.serve.feedback import Feedback, configured_token
from conveyor.serve.metrics import Metrics
from conveyor.serve.options import Options
from conveyor.serve.predictor import Prediction, Predictor
from conveyor.serve.predlog import PredictionLog
from conveyor.serve.router import Router, request_key
from conveyor.serve.routes import Route, Table
from conveyor.serve.workers import Shared

# env -> its record and last analysis as GET /deployments/{env} answers (None: no such env)
Deployments = Callable[[str], "dict[str, Any] | None"]


class Endpoints:
    def __init__(
        self,
        catalog: Catalog,
        options: Options,
        metrics: Metrics,
        log: PredictionLog | None,
        deployments: Deployments | None = None,
        act: Act | None = None,
    ) -> None:
        self.catalog = catalog
        self.options = options
        self.metrics = metrics
        self.log = log
        self.deployments = deployments
        # With --workers N, the sum over workers (None with one worker: its metrics are all)
        self.shared = Shared.from_environment(metrics, before=self._copy_log)
        folder = Path(options.feedback_dir) if options.feedback_dir else None
        self.feedback = Feedback(folder, configured_token(options.feedback_token))
        self.admin = Admin(act, configured_token(options.feedback_token))

    def table(self) -> Table:
        model = "/v2/models/{name}"
        versioned = model + "/versions/{version}"
        return Table(
            [
                Route("/v2", {"GET": self.server_metadata}),
                Route("/v2/health/live", {"GET": self.live}),
                Route("/v2/health/ready", {"GET": self.server_ready}),
                *(
                    route
                    for prefix in (model, versioned)
                    for route in (
                        Route(prefix, {"GET": self.model_metadata}, "metadata"),
                        Route(prefix + "/ready", {"GET": self.model_ready}, "ready"),
                        Route(prefix + "/infer", {"POST": self.infer}, "infer"),
                    )
                ),
                Route("/invocations", {"POST": self.invocations}, "invocations", scoring=True),
                Route("/ping", {"GET": self.health}, scoring=True),
                Route("/health", {"GET": self.health}, scoring=True),
                Route("/version", {"GET": self.version}, scoring=True),
                Route("/metrics", {"GET": self.prometheus}),
                Route("/deployments/{env}", {"GET": self.deployment}),
                Route("/deployments/{env}/{action}", {"POST": self.admin}, "admin"),
                Route("/feedback", {"POST": self.feedback}, "feedback"),
                Route("/openapi.json", {"GET": self.openapi}),
            ]
        )

    # -- Open Inference Protocol v2 ------------------------------------------------------------

    async def server_metadata(self, request: Request) -> Reply:
        doc = {"name": "conveyor", "version": _version(), "extensions": ["binary_tensor_data"]}
        return as_json(doc)

    async def live(self, request: Request) -> Reply:
        return as_json({"live": True})

    async def server_ready(self, request: Request) -> Reply:
        ready = self.catalog.ready
        return as_json({"ready": ready}, 200 if ready else 503)

    async def model_metadata(self, request: Request) -> Reply:
        predictor = self.catalog.find(request.params["name"], request.params.get("version"))
        current = predictor.require()
        meta = v2.metadata(
            predictor.name, [current.number], f"conveyor-{current.flavor}", current.signature
        )
        return as_json(meta, version=current.number, role=predictor.role)

    async def model_ready(self, request: Request) -> Reply:
        predictor = self.catalog.find(request.params["name"], request.params.get("version"))
        ready = predictor.ready
        state = {"name": predictor.name, "ready": ready}
        return as_json(state, 200 if ready else 503, predictor.version, predictor.role)

    async def infer(self, request: Request) -> Reply:
        predictor = self.catalog.find(request.params["name"], request.params.get("version"))
        body = await read_body(request, self.options.max_body_bytes)
        length = request.headers.get(b"inference-header-content-length")
        parsed = v2.parse_infer(body, int(length) if length and length.isdigit() else None)
        current = predictor.require()
        data = v2.model_input(current.signature, parsed.inputs)
        rid = request.request_id
        if parsed.id is not None and not request.own_id and REQUEST_ID.fullmatch(parsed.id):
            rid = parsed.id  # the id the client knows names the request everywhere
        output = current.output
        if parsed.outputs is not None and set(parsed.outputs) - {output}:
            unknown = ", ".join(sorted(set(parsed.outputs) - {output}))
            raise RequestError(f"model {predictor.name} has no output {unknown}; it gives {output}")
        key = _key(predictor, request, rid)
        checked, prediction = await predictor.predict(data, timeout=self.options.timeout, key=key)
        if self.log is not None:
            checked = v2.sent_rows(parsed, checked)  # the rows' JSON as sent: not encoded again
        self._log(rid, predictor.name, prediction, "infer", checked)
        answer = v2.infer_response(
            predictor.name, prediction.version, parsed.id or rid, {output: prediction.outputs}
        )
        reply = as_json(answer, version=prediction.version, role=prediction.role)
        return reply._replace(request_id=rid)

    # -- MLflow's scoring protocol -------------------------------------------------------------

    async def invocations(self, request: Request) -> Reply:
        predictor = self.catalog.default
        if predictor is None:
            raise NotReady("no model is served here")
        body = await read_body(request, self.options.max_body_bytes)
        content_type = request.headers.get(b"content-type", b"").decode("latin-1")
        data = scoring.parse(body, content_type)
        key = _key(predictor, request, request.request_id)
        checked, prediction = await predictor.predict(data, timeout=self.options.timeout, key=key)
        if self.log is not None:
            rows = scoring.sent_rows(body, checked) if isinstance(data, list) else None
            inputs = checked if rows is None else rows
            self._log(request.request_id, predictor.name, prediction, "invocations", inputs)
        answer = scoring.response(prediction.outputs)
        return as_json(answer, version=prediction.version, role=prediction.role)

    async def health(self, request: Request) -> Reply:
        return Reply(200 if self.catalog.ready else 503, b"\n", TEXT)

    async def version(self, request: Request) -> Reply:
        return Reply(200, _version().encode() + b"\n", TEXT)

    # -- the server's own ----------------------------------------------------------------------

    async def prometheus(self, request: Request) -> Reply:
        if self.shared is not None:
            return Reply(200, self.shared.render().encode(), TEXT)
        self._copy_log()
        return Reply(200, self.metrics.render().encode(), TEXT)

    def _copy_log(self) -> None:
        if self.log is not None:
            self.metrics.log_dropped = self.log.dropped
            self.metrics.log_pending_bytes = self.log.pending_bytes

    async def deployment(self, request: Request) -> Reply:
        env = request.params["env"]
        state = None
        if self.deployments is not None:
            state = await asyncio.to_thread(self.deployments, env)
        if state is None:
            hint = (
                "`conveyor deploy MODEL --env ENV` starts one"
                if self.deployments is not None
                else "this server serves no project: start it inside one"
            )
            raise NotFound(f"no deployment of environment {env!r}", hint=hint)
        return as_json(state)

    async def openapi(self, request: Request) -> Reply:
        return as_json(openapi.document(_version()))

    def _log(
        self, rid: str, model: str, prediction: Prediction, endpoint: str, inputs: Any
    ) -> None:
        if self.log is not None:
            self.log.record(rid, model, prediction.version, endpoint, inputs, prediction.outputs)


def _key(predictor: Predictor, request: Request, rid: str) -> str:
    """What a router splits by: the request id, or the header or cookie it is sticky by."""
    if isinstance(predictor, Router) and predictor.sticky:
        return request_key(predictor.sticky, request.headers, rid)
    return rid


def _version() -> str:
    from conveyor import __version__

    return __version__
