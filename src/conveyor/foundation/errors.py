"""The one exception tree of conveyor.

Every error a user can cause is a :class:`ConveyorError` whose message says what failed and
where, and whose ``hint`` says what to do next. The CLI prints ``message`` and ``hint`` on one or
two lines and exits with ``exit_code``; it shows a traceback only with ``--debug``.

    ConveyorError            exit 1
    ├── ConfigError          exit 2   a wrong key or value in a config or pointer file
    ├── NotAProjectError     exit 2   no .conveyor/ above the working directory
    ├── PathError            exit 2   a path that is missing, unreadable or outside the project
    ├── DataError            exit 1   a corrupt or missing object, a failed checkout
    ├── RemoteError          exit 1   a remote that is unknown, unreachable or refuses a transfer
    ├── GitError             exit 1   git is missing or a revision is unknown
    ├── TrackingError        exit 1   the metadata store is unreachable, or a logging call is wrong
    ├── PipelineError        exit 1   a stage lacks a dep no stage writes, or did not write its outs
    ├── CiError              exit 1   a CI flow step failed: the project's tests, a PR comment
    └── LockError            exit 3   another conveyor process holds the project
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base of every error conveyor raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(ConveyorError):
    exit_code = 2


class NotAProjectError(ConveyorError):
    exit_code = 2


class PathError(ConveyorError):
    exit_code = 2


class DataError(ConveyorError):
    pass


class RemoteError(ConveyorError):
    pass


class GitError(ConveyorError):
    pass


class TrackingError(ConveyorError):
    pass


class PipelineError(ConveyorError):
    pass


class LockError(ConveyorError):
    exit_code = 3


class CiError(ConveyorError):
    """A step of a CI flow (check, report, the pull-request comment) could not be done."""
