"""Errors a request can cause, each with the HTTP status it is answered with.

    RequestError        400  the body is not what the protocol or the model's signature wants
    ├── NotFound        404  no such model, version or endpoint
    ├── NotAllowed      405  a known path with the wrong method
    ├── TooLarge        413  the body or the number of rows is over the server's limit
    ├── Unsupported     415  a content type the endpoint does not read
    ├── ModelFailed     500  the model raised something other than a complaint about values
    ├── NotReady        503  the model is still loading, or failed to load
    └── TimedOut        504  the prediction took longer than the per-request timeout

Each protocol turns them into its own error body: ``{"error": ...}`` for v2,
``{"error_code": ..., "message": ...}`` for MLflow's scoring protocol.

:class:`CannotServe` is the server's own (exit code 2): a model it cannot load at start-up.
"""

from __future__ import annotations

from conveyor.foundation.errors import ConveyorError


class RequestError(ConveyorError):
    status = 400
    code = "BAD_REQUEST"


class NotFound(RequestError):
    status = 404
    code = "RESOURCE_DOES_NOT_EXIST"


class NotAllowed(RequestError):
    status = 405
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, allow: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.allow = allow  # the Allow header's value (RFC 9110 wants it on every 405)


class TooLarge(RequestError):
    status = 413
    code = "BAD_REQUEST"


class Unsupported(RequestError):
    status = 415
    code = "BAD_REQUEST"


class NotReady(RequestError):
    status = 503
    code = "TEMPORARILY_UNAVAILABLE"


class TimedOut(RequestError):
    status = 504
    code = "DEADLINE_EXCEEDED"


class ModelFailed(RequestError):
    status = 500
    code = "INTERNAL_ERROR"


class CannotServe(ConveyorError):
    """A model the server cannot load at start-up (an untrusted or broken package, a missing
    module): the server stops rather than wait unready for a fix that will not come."""

    exit_code = 2
