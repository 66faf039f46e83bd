"""The server's settings, as ``conveyor serve``'s flags set them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    max_body_bytes: int = 16 * 2**20
    max_rows: int = 100_000
    timeout: float = 30.0  # seconds per request
    max_batch_size: int = 64
    max_latency_ms: float = 0.0
    reload_interval: float = 5.0  # seconds between reads of the desired state
    deploy_interval: float = 0.2  # seconds between reads of an environment's deployment record
    max_shadow_copies: int = 512  # shadow copies in flight at once; more are dropped
    log_dir: str | None = None
    log_rate: float = 1.0
    log_buffer_bytes: int = 64 * 2**20
    feedback_token: str | None = None  # --feedback-token; else $CONVEYOR_ADMIN_TOKEN
    feedback_dir: str | None = None  # <root>/.conveyor/feedback; None: feedback refused
    candidate_socket: str | None = None  # the candidate's own process (serve --env), else here
