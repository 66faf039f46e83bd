"""conveyor serve: models over the Open Inference Protocol v2 and MLflow's scoring protocol."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.cli.app import UsageError, arg, command

if TYPE_CHECKING:
    from conveyor.cli.monitor_process import MonitorProcess
    from conveyor.deploy.config import Environment
    from conveyor.serve.options import Options


@command(
    "serve",
    arg(
        "uris",
        nargs="*",
        metavar="MODEL",
        help="models:/name@alias, models:/name/3 or a folder (none with --env; default: "
        "$CONVEYOR_MODEL, URIs separated by spaces)",
    ),
    arg(
        "--env",
        metavar="ENV",
        help="serve an environment of deploy: as its deployment record says, follow it, and "
        "run its rollouts",
    ),
    arg(
        "--host",
        help="address to listen on (default: $CONVEYOR_HOST, the environment's, else loopback "
        "only)",
    ),
    arg(
        "--port",
        type=int,
        help="port (default: $CONVEYOR_PORT, the environment's, else 8080; 0 picks one)",
    ),
    arg(
        "--workers",
        type=int,
        help="server processes sharing the port (default: $CONVEYOR_WORKERS, else 1)",
    ),
    arg("--max-batch-size", type=int, default=64, metavar="ROWS", help="rows per model call"),
    arg(
        "--max-latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="hold a batch open this long for more rows (default: 0, batch what is queued)",
    ),
    arg("--max-body-mb", type=float, default=16.0, metavar="MB", help="largest request body"),
    arg("--max-rows", type=int, default=100_000, help="most rows in one request"),
    arg("--timeout", type=float, default=30.0, metavar="S", help="per-request time limit"),
    arg(
        "--reload-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="how often a served alias is looked up again (hot reload)",
    ),
    arg(
        "--log-dir",
        metavar="DIR",
        help="prediction log (default: $CONVEYOR_LOG_DIR, else .conveyor/predictions in a "
        "project, else none)",
    ),
    arg(
        "--log-sample",
        type=float,
        default=1.0,
        metavar="RATE",
        help="share of requests logged, 0 to 1 (default: 1)",
    ),
    arg(
        "--log-buffer-mb",
        type=float,
        default=64.0,
        metavar="MB",
        help="predictions held while the log cannot keep up; past it they are dropped and "
        "counted (default: 64)",
    ),
    arg(
        "--feedback-token",
        metavar="TOKEN",
        help="the token POST /feedback needs (default: $CONVEYOR_ADMIN_TOKEN; without one, "
        "feedback is refused)",
    ),
    arg(
        "--no-monitor",
        dest="monitor",
        action="store_false",
        help="with --env: do not run the environment's monitor: here (conveyor monitor watch "
        "can run it elsewhere)",
    ),
    help="serve registered models over HTTP (OIP v2 and MLflow scoring)",
)
def serve_cmd(opts: Namespace) -> None:
    """Serve models over HTTP: the Open Inference Protocol v2 (/v2/...) and MLflow's scoring
    protocol (/invocations), with /metrics for Prometheus. A served alias is followed: when it
    moves, the new version is loaded and swapped in without dropping requests. With --env the
    environment's deployment record is followed instead (stable, and a candidate while a rollout
    is on), and this process runs the environment's rollout controller. Every default can come
    from the environment (CONVEYOR_MODEL, CONVEYOR_HOST, CONVEYOR_PORT, CONVEYOR_WORKERS,
    CONVEYOR_LOG_DIR): a container's entrypoint is configured that way."""
    from conveyor.monitor import feedback
    from conveyor.serve import server
    from conveyor.serve.options import Options

    _from_environment(opts)
    env, env_root = None, None
    if opts.env:
        if opts.uris:
            raise UsageError("serve either MODEL URIs or --env ENV, not both")
        from conveyor.deploy.config import environment
        from conveyor.foundation.paths import find_root

        env_root = find_root()
        env = environment(env_root, opts.env)
    elif not opts.uris:
        raise UsageError("name the models to serve (MODEL ...), or an environment (--env ENV)")
    host = opts.host or (env.host if env else "127.0.0.1")
    port = opts.port if opts.port is not None else (env.port if env else 8080)
    opts.workers = opts.workers if opts.workers is not None else (env.workers if env else 1)

    for flag, value in (
        ("--workers", opts.workers),
        ("--max-batch-size", opts.max_batch_size),
        ("--max-rows", opts.max_rows),
    ):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1")
    if min(opts.max_body_mb, opts.timeout, opts.reload_interval, opts.log_buffer_mb) <= 0:
        raise UsageError(
            "--max-body-mb, --timeout, --reload-interval and --log-buffer-mb must be above 0"
        )
    if not 0 <= opts.log_sample <= 1:
        raise UsageError("--log-sample is a share of requests, from 0 to 1")
    root = server.check(opts.uris) if env is None else env_root
    options = Options(
        max_body_bytes=int(opts.max_body_mb * 2**20),
        max_rows=opts.max_rows,
        timeout=opts.timeout,
        max_batch_size=opts.max_batch_size,
        max_latency_ms=opts.max_latency_ms,
        reload_interval=opts.reload_interval,
        log_dir=opts.log_dir or server.default_log_dir(root),
        log_rate=opts.log_sample,
        log_buffer_bytes=int(opts.log_buffer_mb * 2**20),
        feedback_token=opts.feedback_token,
        feedback_dir=str(feedback.folder(root)) if root is not None else None,
    )
    if env is None:
        server.run(
            opts.uris, root=root, host=host, port=port, workers=opts.workers, options=options
        )
        return
    assert root is not None
    _serve_env(root, env, host, port, opts.workers, options, monitor=opts.monitor)


def _from_environment(opts: Namespace) -> None:
    """Fill what the command line leaves out from CONVEYOR_* variables (the flags win)."""
    import os

    if not opts.uris and not opts.env:
        opts.uris = os.environ.get("CONVEYOR_MODEL", "").split()
    opts.host = opts.host or os.environ.get("CONVEYOR_HOST") or None
    opts.log_dir = opts.log_dir or os.environ.get("CONVEYOR_LOG_DIR") or None
    for flag, name in (("port", "CONVEYOR_PORT"), ("workers", "CONVEYOR_WORKERS")):
        given = os.environ.get(name, "").strip()
        if getattr(opts, flag) is None and given:
            try:
                setattr(opts, flag, int(given))
            except ValueError:
                raise UsageError(f"{name}={given!r} is not a whole number") from None


def _serve_env(
    root: Path,
    env: Environment,
    host: str,
    port: int,
    workers: int,
    options: Options,
    *,
    monitor: bool = True,
) -> None:
    """The server following the environment's record, in worker processes (the candidate of a
    rollout in a process of its own when the environment says so), and the rollout controller
    on a thread of this process (their supervisor), so that a tick never holds the interpreter
    a request is waiting for. The controller reads the server's /metrics, so the socket is
    bound first (a port 0 becomes the one the system picked); it aborts a rollout whose
    candidate's process stopped."""
    from conveyor.deploy.admin import FACTORY
    from conveyor.deploy.controller import start_thread
    from conveyor.serve import server
    from conveyor.serve.host import Hosting

    sock = server.bind(host, port)  # before the controller is told where to read /metrics
    port = int(sock.getsockname()[1])
    # The controller reads /metrics over loopback when the server listens on every address.
    near = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    shown = f"[{near}]" if ":" in near else near
    logged = Path(options.log_dir) if options.log_dir else None
    hosting = None
    if env.isolated:
        shadow = env.strategy.kind == "shadow"
        hosting = Hosting(root, env.model, options, notify=_notify, shadow=shadow)
    thread, stop = start_thread(
        root, env, f"http://{shown}:{port}", notify=_notify, predictions=logged,
        health=hosting.stopped_since if hosting is not None else None,
    )  # fmt: skip
    watching = _monitor(root, env, f"http://{shown}:{port}", logged) if monitor else None
    try:
        server.run(
            [], root=root, host=host, port=port, workers=workers, options=options,
            env=env.name, model=env.model, supervised=True, hosting=hosting, sock=sock,
            factory=FACTORY,
        )  # fmt: skip
    finally:
        stop.set()
        thread.join(timeout=5)
        if watching is not None:
            watching.stop()


def _monitor(root: Path, env: Environment, url: str, logged: Path | None) -> MonitorProcess | None:
    """The environment's monitor in a process of its own (:mod:`conveyor.cli.monitor_process`),
    when conveyor.yaml monitors it; one that cannot start (its reference missing, say) says so,
    and serving goes on."""
    from conveyor.cli.monitor_process import MonitorProcess
    from conveyor.monitor.config import monitors

    if env.name not in monitors(root):
        return None
    process = MonitorProcess(root, env.name, url, logged)
    process.start()
    return process


def _notify(message: str) -> None:
    """As the server says what it does: one line on stderr."""
    import sys

    print(f"conveyor serve: {message}", file=sys.stderr, flush=True)
