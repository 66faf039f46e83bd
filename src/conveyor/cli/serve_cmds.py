"""conveyor serve: models over the Open Inference Protocol v2 and MLflow's scoring protocol."""

from __future__ import annotations

from argparse import Namespace

from conveyor.cli.app import UsageError, arg, command


@command(
    "serve",
    arg("uris", nargs="+", metavar="MODEL", help="models:/name@alias, models:/name/3 or a folder"),
    arg("--host", default="127.0.0.1", help="address to listen on (default: loopback only)"),
    arg("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)"),
    arg("--workers", type=int, default=1, help="server processes sharing the port (default: 1)"),
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
    arg("--log-dir", metavar="DIR", help="prediction log (default: .conveyor/predictions)"),
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
    help="serve registered models over HTTP (OIP v2 and MLflow scoring)",
)
def serve_cmd(opts: Namespace) -> None:
    """Serve models over HTTP: the Open Inference Protocol v2 (/v2/...) and MLflow's scoring
    protocol (/invocations), with /metrics for Prometheus. A served alias is followed: when it
    moves, the new version is loaded and swapped in without dropping requests."""
    from conveyor.serve import server
    from conveyor.serve.options import Options

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
    root = server.check(opts.uris)
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
    )
    server.run(
        opts.uris, root=root, host=opts.host, port=opts.port, workers=opts.workers, options=options
    )
