"""The server's ASGI app: routes, limits, headers, error bodies, metrics and the prediction log.

    GET  /v2/health/live, /v2/health/ready, /v2            Open Inference Protocol v2
    GET  /v2/models/{name}[/versions/{v}][/ready]
    POST /v2/models/{name}[/versions/{v}]/infer
    POST /invocations; GET /ping, /health, /version        MLflow's scoring protocol
    GET  /metrics                                          Prometheus text format
    GET  /openapi.json                                     this API, described

Every response carries ``x-request-id`` (the client's, or a new one) and ``x-model-version``
(the version that answered; for other endpoints, the first model's). A request the app cannot
read is answered with a 4xx and never reaches the model; one that fails inside the model is
answered alone (see :mod:`conveyor.serve.batching`).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from conveyor.foundation.errors import ConveyorError
from conveyor.serve import memory, openapi, scoring, v2
from conveyor.serve.errors import NotAllowed, NotFound, NotReady, RequestError, TooLarge
from conveyor.serve.metrics import Metrics
from conveyor.serve.predlog import PredictionLog
from conveyor.serve.served import Served

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"
TEXT = b"text/plain; version=0.0.4; charset=utf-8"
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_MLFLOW_PATHS = frozenset(("/invocations", "/ping", "/health", "/version"))


class _Ids:
    """New request ids: 32 hex digits, a random prefix per process and a counter (as unique as
    uuid4's, at a fraction of its cost)."""

    def __init__(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.count = itertools.count()

    def new(self) -> str:
        return f"{self.prefix}{next(self.count):016x}"


@dataclass(frozen=True)
class Options:
    max_body_bytes: int = 16 * 2**20
    max_rows: int = 100_000
    timeout: float = 30.0
    max_batch_size: int = 64
    max_latency_ms: float = 0.0
    reload_interval: float = 5.0
    log_dir: str | None = None
    log_rate: float = 1.0
    log_buffer_bytes: int = 64 * 2**20


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: bytes = JSON
    version: str | None = None
    request_id: str | None = None  # the v2 body's id, when the client sent no header
    headers: tuple[tuple[bytes, bytes], ...] = ()


class App:
    def __init__(
        self,
        uris: list[str],
        *,
        root: Path | None,
        options: Options | None = None,
        notify: Callable[[str], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options or Options()
        self.metrics = Metrics()
        self.notify = notify or (lambda _message: None)
        # Called once, with the reason, when a model cannot be loaded at start-up: nothing
        # loaded before would serve in its place, and retrying would only hide the mistake.
        self.on_failure = on_failure or (lambda _reason: None)
        self.failed: str | None = None
        self.served = [
            Served(
                uri,
                root,
                self.metrics,
                max_batch_size=self.options.max_batch_size,
                max_latency_ms=self.options.max_latency_ms,
                max_rows=self.options.max_rows,
            )
            for uri in uris
        ]
        self.by_name: dict[str, list[Served]] = {}
        for served in self.served:
            self.by_name.setdefault(served.name, []).append(served)
        log_dir = self.options.log_dir
        self.log = (
            PredictionLog(
                Path(log_dir),
                rate=self.options.log_rate,
                buffer_bytes=self.options.log_buffer_bytes,
                notify=self.notify,
            )
            if log_dir and self.options.log_rate > 0
            else None
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._told: dict[str, str] = {}  # the last reload failure printed, by URI
        self._ids = _Ids()

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
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        """Load the models in the background (``/v2/health/ready`` says when), then follow
        their aliases; a model that cannot be loaded makes :attr:`failed` say why and calls
        ``on_failure``."""
        memory.keep_freed_memory()
        self._tasks = [asyncio.get_running_loop().create_task(self._run())]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for served in self.served:
            served.batcher.close()
        if self.log is not None:
            self.log.close()

    async def _run(self) -> None:
        for served in self.served:
            reason = await self._load(served)
            if reason is not None:
                self.failed = f"cannot load {served.uri}: {reason}"
                self.on_failure(self.failed)
                return
            assert served.current is not None
            self.notify(f"serving {served.name} version {served.current.number} ({served.uri})")
        _settle()
        await self._watch()  # only now: a first load is not a reload

    async def _load(self, served: Served) -> str | None:
        """None once loaded, else why not."""
        try:
            await asyncio.to_thread(served.load)
        except ConveyorError as exc:
            return exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
        except Exception as exc:  # a broken package: a missing module, a corrupt file...
            served.error = f"{type(exc).__name__}: {exc}"
            return served.error
        return None

    async def _watch(self) -> None:
        """Follow the served aliases; a version that fails to load leaves the old one serving."""
        while True:
            await asyncio.sleep(self.options.reload_interval)
            for served in self.served:
                if not served.follows_alias:
                    continue
                before = served.current.number if served.current else "?"
                try:
                    changed = await asyncio.to_thread(served.reload)
                except Exception as exc:
                    told = f"{served.uri}: keeping version {before}: {exc}"
                    if self._told.get(served.uri) != told:  # once, not every few seconds
                        self._told[served.uri] = told
                        self.notify(told)
                    continue
                self._told.pop(served.uri, None)
                if changed and served.current is not None:
                    _settle()
                    self.notify(
                        f"{served.uri} moved: serving version {served.current.number} "
                        f"(was {before})"
                    )

    @property
    def ready(self) -> bool:
        return all(s.ready for s in self.served)

    # -- requests ------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id")
        rid = given.decode("latin-1") if given else ""
        own = bool(rid) and _ID.fullmatch(rid) is not None
        if not own:
            rid = self._ids.new()
        path: str = scope["path"]
        method: str = scope["method"]
        endpoint, name = self._labels(path)  # known before the work, so failures count too
        mlflow = path in _MLFLOW_PATHS
        try:
            if path.startswith("/v2"):
                reply = await self._v2(method, path, headers, receive, rid, own)
            elif path == "/invocations":
                _only("POST", method)
                reply = await self._invocations(headers, receive, rid)
            else:
                reply = self._simple(method, path)
        except RequestError as exc:
            reply = _error(exc, mlflow)
        except Exception as exc:  # a bug must cost one request, not the server
            reply = _error(RequestError(f"internal error: {type(exc).__name__}: {exc}"), mlflow)
            reply = reply._replace(status=500)
        if reply.request_id is not None:
            rid = reply.request_id
        version = reply.version
        if version is None:
            current = self.served[0].current if self.served else None
            version = current.number if current else ""
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type),
                    (b"content-length", str(len(reply.body)).encode()),
                    (b"x-request-id", rid.encode()),
                    (b"x-model-version", version.encode()),
                    *reply.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})
        if name:
            self.metrics.request(name, version, endpoint, reply.status, time.perf_counter() - start)

    def _labels(self, path: str) -> tuple[str, str]:
        """The metrics' endpoint and model for a path: a served model's name only (a client
        must not be able to add label values at will)."""
        if path == "/invocations":
            return "invocations", self.served[0].name
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[:2] == ["v2", "models"] and parts[2] in self.by_name:
            last = parts[-1] if len(parts) > 3 else ""
            return (last if last in ("infer", "ready") else "metadata"), parts[2]
        return "other", ""

    async def _v2(
        self,
        method: str,
        path: str,
        headers: dict[bytes, bytes],
        receive: Receive,
        rid: str,
        own: bool,
    ) -> Reply:
        parts = path.strip("/").split("/")
        if parts == ["v2"]:
            _only("GET", method)
            return _json(_server_metadata())
        if parts[1:] == ["health", "live"]:
            _only("GET", method)
            return _json({"live": True})
        if parts[1:] == ["health", "ready"]:
            _only("GET", method)
            return _json({"ready": self.ready}, 200 if self.ready else 503)
        if len(parts) < 3 or parts[1] != "models":
            raise NotFound(f"no endpoint {path}")
        name, rest, wanted = parts[2], parts[3:], None
        if rest[:1] == ["versions"]:
            if len(rest) < 2:
                raise NotFound(f"no endpoint {path}")
            wanted, rest = rest[1], rest[2:]
        served = self._find(name, wanted)
        if rest == []:
            _only("GET", method)
            current = served.require()
            meta = v2.metadata(
                served.name,
                [current.number],
                f"conveyor-{current.model.manifest.get('flavor', '')}",
                current.model.signature,
            )
            return _json(meta, version=current.number)
        if rest == ["ready"]:
            _only("GET", method)
            number = served.current.number if served.current else None
            state = {"name": served.name, "ready": served.ready}
            return _json(state, 200 if served.ready else 503, number)
        if rest == ["infer"]:
            _only("POST", method)
            body = await self._body(receive, headers)
            length = headers.get(b"inference-header-content-length")
            request = v2.parse_infer(body, int(length) if length and length.isdigit() else None)
            current = served.require()
            data = v2.model_input(current.model.signature, request.inputs)
            if request.id is not None and not own and _ID.fullmatch(request.id):
                rid = request.id  # the id the client knows names the request everywhere
            output = current.output
            if request.outputs is not None and set(request.outputs) - {output}:
                unknown = ", ".join(sorted(set(request.outputs) - {output}))
                raise RequestError(f"model {name} has no output {unknown}; it gives {output}")
            checked, prediction = await served.predict(data, timeout=self.options.timeout)
            if self.log is not None:
                checked = v2.sent_rows(request, checked)
            self._log(rid, served, prediction.version, "infer", checked, prediction.outputs)
            answer = v2.infer_response(
                served.name, prediction.version, request.id or rid, {output: prediction.outputs}
            )
            reply = _json(answer, version=prediction.version)
            return reply._replace(request_id=rid)
        raise NotFound(f"no endpoint {path}")

    async def _invocations(self, headers: dict[bytes, bytes], receive: Receive, rid: str) -> Reply:
        served = self.served[0]
        body = await self._body(receive, headers)
        data = scoring.parse(body, headers.get(b"content-type", b"").decode("latin-1"))
        checked, prediction = await served.predict(data, timeout=self.options.timeout)
        if self.log is not None:
            rows = scoring.sent_rows(body, checked) if isinstance(data, list) else None
            inputs = checked if rows is None else rows
            self._log(rid, served, prediction.version, "invocations", inputs, prediction.outputs)
        return _json(scoring.response(prediction.outputs), version=prediction.version)

    def _simple(self, method: str, path: str) -> Reply:
        if path in ("/ping", "/health"):
            _only("GET", method)
            return Reply(200 if self.ready else 503, b"\n", TEXT)
        if path == "/version":
            _only("GET", method)
            return Reply(200, _version().encode() + b"\n", TEXT)
        if path == "/metrics":
            _only("GET", method)
            if self.log is not None:
                self.metrics.log_dropped = self.log.dropped
                self.metrics.log_pending_bytes = self.log.pending_bytes
            return Reply(200, self.metrics.render().encode(), TEXT)
        if path == "/openapi.json":
            _only("GET", method)
            return _json(openapi.document(_version()))
        raise NotFound(f"no endpoint {path}", hint="see GET /openapi.json for the endpoints")

    def _find(self, name: str, version: str | None) -> Served:
        candidates = self.by_name.get(name)
        if not candidates:
            raise NotFound(
                f"no model {name!r} is served here",
                hint=f"served: {', '.join(self.by_name) or 'none'}",
            )
        if version is None:
            return candidates[0]
        for served in candidates:
            if served.current is not None and served.current.number == version:
                return served
        serving = [s.current.number for s in candidates if s.current is not None]
        if not serving:
            raise NotReady(f"model {name} is not ready")
        raise NotFound(
            f"model {name} has no version {version} served here",
            hint=f"serving version(s): {', '.join(serving)}",
        )

    async def _body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        limit = self.options.max_body_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError("the client went away before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _log(
        self, rid: str, served: Served, version: str, endpoint: str, inputs: Any, outputs: Any
    ) -> None:
        if self.log is not None:
            self.log.record(rid, served.name, version, endpoint, inputs, outputs)


def _settle() -> None:
    """Keep what is loaded now (models, numpy, scikit-learn...) out of the garbage collector's
    way: each full collection would walk it all again, stalling every request in flight for tens
    of milliseconds. (Objects are still freed when nothing refers to them.)"""
    gc.freeze()


def _only(allowed: str, method: str) -> None:
    if method != allowed and not (allowed == "GET" and method == "HEAD"):
        allow = "GET, HEAD" if allowed == "GET" else allowed
        raise NotAllowed(f"use {allowed} here, not {method}", allow=allow)


def _json(doc: Any, status: int = 200, version: str | None = None) -> Reply:
    return Reply(status, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), JSON, version)


def _error(exc: RequestError, mlflow: bool) -> Reply:
    if mlflow:
        reply = _json(scoring.error(exc), exc.status)
    else:
        message = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
        reply = _json({"error": message}, exc.status)
    if isinstance(exc, NotAllowed):
        return reply._replace(headers=((b"allow", exc.allow.encode()),))
    return reply


def _too_large(size: int, limit: int) -> TooLarge:
    return TooLarge(
        f"the body is {size} bytes; this server takes at most {limit} bytes",
        hint="send fewer rows per request, or start the server with a larger --max-body-mb",
    )


def _server_metadata() -> dict[str, Any]:
    return {"name": "conveyor", "version": _version(), "extensions": ["binary_tensor_data"]}


def _version() -> str:
    from conveyor import __version__

    return __version__
