"""The streaming routes are called without the router, with the same middleware as the rest."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import requests

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "echo:hi"}]}


def test_a_streaming_route_is_answered_without_the_router_and_with_the_middleware(
    app: Any,
) -> None:
    """POST /v1/chat/completions skips the router, and still gets the request id, the
    Server-Timing header and the exception handlers' words."""
    ok, bad = requests(
        app,
        ("POST", "/v1/chat/completions", {"json": CHAT, "headers": {"X-Request-Id": "r-1"}}),
        ("POST", "/v1/chat/completions", {"content": b"{nope",
                                          "headers": {"content-type": "application/json"}}),
    )
    assert ok.status_code == 200
    assert ok.json()["choices"][0]["message"]["content"] == "hi"
    assert ok.headers["x-request-id"] == "r-1"
    assert ok.headers["server-timing"].startswith("sserelay;dur=")
    assert bad.status_code == 400
    assert "JSON" in bad.json()["error"]["message"]
    assert bad.headers["x-request-id"]
    assert app.router.paths == []


def test_a_route_with_a_path_parameter_gets_it_without_the_router(app: Any) -> None:
    """GET and DELETE /v1/streams/{stream_id}: the id reaches the endpoint."""
    follow, stop = requests(
        app, ("GET", "/v1/streams/nope", {}), ("DELETE", "/v1/streams/nope", {})
    )
    for reply in (follow, stop):
        assert reply.status_code == 404
        assert reply.json()["error"]["code"] == "stream_not_found"
    assert app.router.paths == []


def test_other_routes_and_methods_go_through_the_router(app: Any) -> None:
    """The models list, a wrong method on a streaming path (405) and a HEAD take
    Starlette's way."""
    models, wrong, head = requests(
        app,
        ("GET", "/v1/models", {}),
        ("DELETE", "/completionChat", {}),
        ("HEAD", "/completionChat", {}),
    )
    assert models.status_code == 200
    assert wrong.status_code == 405
    assert "not allowed" in wrong.json()["error"]["message"]
    assert head.status_code == 400  # no prompt: the endpoint, reached through the router
    assert app.router.paths == ["/v1/models", "/completionChat", "/completionChat"]


def test_a_request_under_a_root_path_goes_through_the_router(app: Any) -> None:
    """Mounted under a root path, the app leaves matching to Starlette, which knows it."""
    (reply,) = requests(app, ("GET", "/v1/streams/nope", {}), root_path="/relay")
    assert reply.status_code == 404
    assert app.router.paths == ["/relay/v1/streams/nope"]
