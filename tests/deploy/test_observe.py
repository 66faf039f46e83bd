"""Reading a server's metrics: our own exposition parsed back after real observations, deltas
between two scrapes (with restarts), the two sides of a rollout, and scraping over HTTP."""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.deploy.observe import ScrapeError, Side, delta, parse, scrape, series, sides
from conveyor.serve.metrics import LATENCY_BUCKETS, Metrics, exposition, families, merge

STABLE = {"model": "clf", "version": "1", "role": "stable", "endpoint": "infer"}


def observed() -> Metrics:
    metrics = Metrics()
    for _ in range(10):
        metrics.request("clf", "1", "infer", 200, 0.003)
    metrics.request("clf", "1", "invocations", 500, 0.2)
    for i in range(4):
        metrics.request("clf", "2", "infer", 503 if i == 0 else 200, 0.03, role="candidate")
    metrics.request("clf", "2", "metadata", 500, 0.0001, role="candidate")  # not the model's
    metrics.request("other", "9", "infer", 500, 0.001)
    metrics.batch("clf", "1", 3)
    metrics.in_flight["clf"] = 1
    metrics.serving('models:/clf@pro"d\\uction\nx', "clf", "1")
    return metrics


def test_parse_reads_our_exposition_like_the_reference_parser() -> None:
    text = observed().render()
    ours = parse(text)
    reference = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert ours == reference
    info = [labels for (name, labels) in ours if name == "conveyor_model_info"]
    assert dict(info[0])["uri"] == 'models:/clf@pro"d\\uction\nx'
    assert ours[series("conveyor_request_duration_seconds_bucket", **STABLE, le="+Inf")] == 10


def test_parse_reads_a_merged_exposition_and_refuses_what_is_not_one() -> None:
    text = exposition(merge([families(observed().render()), families(observed().render())]))
    assert parse(text)[series("conveyor_requests_in_flight", model="clf")] == 2
    assert parse("x 1 1700000000000\n# a comment\n\n") == {("x", ()): 1.0}
    for bad in ("just_a_name", 'x{a="1} 2', "x{a=1} 2", "x{} one", "x 1 2 3", "bad-name 1"):
        with pytest.raises(ScrapeError, match="line 1 of the metrics"):
            parse(bad)


def test_delta_counts_what_happened_between_two_scrapes() -> None:
    metrics = observed()
    before = parse(metrics.render())
    for _ in range(5):
        metrics.request("clf", "1", "infer", 200, 0.003)
    metrics.request("clf", "1", "infer", 200, 7.0)
    metrics.request("clf", "3", "infer", 200, 0.003, role="candidate")  # a new series
    changed = delta(before, parse(metrics.render()))
    assert changed[series("conveyor_requests_total", **STABLE, status="200")] == 6
    assert changed[series("conveyor_request_duration_seconds_count", **STABLE)] == 6
    assert changed[series("conveyor_request_duration_seconds_sum", **STABLE)] == pytest.approx(
        7.015
    )
    new = {**STABLE, "version": "3", "role": "candidate"}
    assert changed[series("conveyor_requests_total", **new, status="200")] == 1
    quiet = {**STABLE, "endpoint": "invocations", "status": "500"}
    assert changed[series("conveyor_requests_total", **quiet)] == 0


def test_a_restart_counts_everything_after_it_for_a_whole_histogram() -> None:
    first = Metrics()
    for _ in range(3):
        first.request("clf", "1", "infer", 200, 0.003)
    before = parse(first.render())
    restarted = Metrics()  # the server started again and answered 5 slow requests
    for _ in range(5):
        restarted.request("clf", "1", "infer", 200, 9.0)
    changed = delta(before, parse(restarted.render()))
    buckets = {
        dict(labels)["le"]: value
        for (name, labels), value in changed.items()
        if name == "conveyor_request_duration_seconds_bucket"
    }
    # only the fast buckets went down, yet the whole histogram restarted: 5 slow, none fast
    assert buckets["0.005"] == 0 and buckets["10"] == 5 and buckets["+Inf"] == 5
    assert changed[series("conveyor_request_duration_seconds_count", **STABLE)] == 5
    assert changed[series("conveyor_request_duration_seconds_sum", **STABLE)] == 45
    # a counter alone cannot tell 3 -> 5 from a restart: it reads 2 more, as Prometheus would
    assert changed[series("conveyor_requests_total", **STABLE, status="200")] == 2
    smaller = Metrics()
    smaller.request("clf", "1", "infer", 200, 0.003)
    assert (
        delta(before, parse(smaller.render()))[
            series("conveyor_requests_total", **STABLE, status="200")
        ]
        == 1
    )


def test_sides_split_by_role_count_5xx_and_turn_buckets_per_bucket() -> None:
    metrics = observed()
    before = parse(metrics.render())
    for _ in range(20):
        metrics.request("clf", "1", "infer", 200, 0.003)
    metrics.request("clf", "1", "invocations", 502, 0.2)
    metrics.request("clf", "1", "infer", 400, 0.001)  # the client's mistake, not an error
    for _ in range(8):
        metrics.request("clf", "2", "infer", 200, 0.03, role="candidate")
    metrics.request("clf", "2", "invocations", 500, 3.0, role="candidate")
    metrics.request("clf", "2", "ready", 503, 0.0001, role="candidate")  # not a prediction
    metrics.request("other", "9", "infer", 500, 0.001)  # another model
    stable, candidate, agreement = sides(delta(before, parse(metrics.render())), "clf")
    assert (stable.requests, stable.errors) == (22, 1)
    assert (candidate.requests, candidate.errors) == (9, 1)
    assert agreement == (0, 0)
    assert stable.latency_buckets[-1] == (math.inf, 0)
    assert [b for b, _ in stable.latency_buckets] == [*LATENCY_BUCKETS, math.inf]
    counts = dict(stable.latency_buckets)
    assert counts[0.001] == 1 and counts[0.005] == 20 and counts[0.25] == 1
    assert sum(counts.values()) == 22
    assert dict(candidate.latency_buckets)[0.05] == 8 and dict(candidate.latency_buckets)[5.0] == 1
    assert (stable.labelled, stable.correct, stable.predictions) == (0, 0, ())


def test_shadow_copies_are_the_candidate_side_and_agreement_is_counted() -> None:
    text = "\n".join(
        [
            "# TYPE conveyor_requests_total counter",
            'conveyor_requests_total{model="clf",version="1",role="stable",endpoint="infer",'
            'status="200"} 50',
            'conveyor_requests_total{model="clf",version="2",role="shadow",endpoint="infer",'
            'status="200"} 45',
            'conveyor_requests_total{model="clf",version="2",role="shadow",endpoint="infer",'
            'status="500"} 3',
            "# TYPE conveyor_shadow_comparisons_total counter",
            'conveyor_shadow_comparisons_total{model="clf",version="2",result="agree"} 40',
            'conveyor_shadow_comparisons_total{model="clf",version="2",result="disagree"} 5',
            'conveyor_shadow_comparisons_total{model="clf",version="2",result="error"} 3',
            'conveyor_shadow_comparisons_total{model="other",version="2",result="agree"} 9',
        ]
    )
    stable, candidate, agreement = sides(delta({}, parse(text)), "clf")
    assert stable == Side(requests=50)
    assert (candidate.requests, candidate.errors) == (48, 3)
    assert agreement == (40, 48)  # a copy that failed was compared and did not agree


# -- scraping over HTTP --------------------------------------------------------------------


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, Metrics]]:
    metrics = observed()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/metrics":
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", metrics
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_scrape_reads_a_server_twice(metrics_server: tuple[str, Metrics]) -> None:
    url, metrics = metrics_server
    before = parse(scrape(url, timeout=5))
    for _ in range(3):
        metrics.request("clf", "2", "infer", 200, 0.03, role="candidate")
    after = parse(scrape(url + "/metrics", timeout=5))
    stable, candidate, _ = sides(delta(before, after), "clf")
    assert (stable.requests, candidate.requests) == (0, 3)
    with pytest.raises(ScrapeError, match="answered 404"):
        scrape(url + "/nowhere", timeout=5)


def test_scrape_of_a_server_that_is_not_there_says_so() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ScrapeError, match="cannot read the metrics") as info:
        scrape(f"http://127.0.0.1:{port}", timeout=2)
    assert "conveyor serve" in (info.value.hint or "")
