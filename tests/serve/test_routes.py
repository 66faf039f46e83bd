"""The route table, with plain handlers: fixed paths, patterns, 405 with Allow, no match."""

from __future__ import annotations

import pytest

from conveyor.serve.errors import NotAllowed
from conveyor.serve.exchange import Reply, Request
from conveyor.serve.routes import Route, Table


async def ok(request: Request) -> Reply:
    return Reply(200, b"ok")


async def other(request: Request) -> Reply:
    return Reply(201, b"other")


TABLE = Table(
    [
        Route("/v2", {"GET": ok}),
        Route("/v2/models/{name}", {"GET": ok}, "metadata"),
        Route("/v2/models/{name}/infer", {"POST": ok}, "infer"),
        Route("/v2/models/{name}/versions/{version}/infer", {"POST": other}, "infer"),
        Route("/invocations", {"POST": ok}, "invocations", scoring=True),
    ]
)


def test_fixed_paths_and_patterns_match_with_their_parameters() -> None:
    assert TABLE.match("/v2") == (TABLE.fixed["v2"], {})
    assert TABLE.match("/v2/") == TABLE.match("/v2")  # as the server always read it
    route, params = TABLE.match("/v2/models/clf/versions/3/infer") or (None, None)
    assert route is not None and route.methods["POST"] is other and route.endpoint == "infer"
    assert params == {"name": "clf", "version": "3"}
    route, params = TABLE.match("/v2/models/clf") or (None, None)
    assert route is not None and route.endpoint == "metadata" and params == {"name": "clf"}
    invocations = TABLE.match("/invocations")
    assert invocations is not None and invocations[0].scoring


@pytest.mark.parametrize(
    "path", ["/nowhere", "/v2/models", "/v2/models//infer", "/v2/models/clf/bogus", "/"]
)
def test_paths_no_route_has_are_none(path: str) -> None:
    assert TABLE.match(path) is None


def test_a_known_path_with_another_method_is_405_with_allow() -> None:
    found = TABLE.match("/v2/models/clf/infer")
    assert found is not None
    route = found[0]
    assert route.handler("POST") is ok
    with pytest.raises(NotAllowed, match="use POST here, not GET") as caught:
        route.handler("GET")
    assert caught.value.allow == "POST" and caught.value.status == 405
    metadata = TABLE.match("/v2/models/clf")
    assert metadata is not None
    assert metadata[0].handler("HEAD") is ok  # a GET route answers HEAD
    with pytest.raises(NotAllowed) as caught:
        metadata[0].handler("DELETE")
    assert caught.value.allow == "GET, HEAD"


def test_two_routes_for_one_fixed_path_are_refused() -> None:
    with pytest.raises(ValueError, match="two routes for /ping"):
        Table([Route("/ping", {"GET": ok}), Route("/ping/", {"POST": ok})])
