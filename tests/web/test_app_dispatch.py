"""The streaming routes are called without the router, with the same middleware as the rest."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from sserelay.gateway import GatewayConfig
from sserelay.settings import Settings
from sserelay.web.app import create_app
from tests.conftest import PROVIDER_KEY, Upstream
from tests.gateway.conftest import write_config


class CountingRouter:
    """Starlette's router, counting the requests that reach it."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.paths: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.router, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.router(scope, receive, send)


@pytest.fixture
def app(tmp_path: Path, upstream: Upstream) -> Any:
    loaded = GatewayConfig.load(
        write_config(tmp_path / "gateway.toml", upstream.url), env={"OPENAI_API_KEY": PROVIDER_KEY}
    )
    config = dataclasses.replace(loaded, database=str(tmp_path / "keys.sqlite3"))
    built = create_app(Settings(openai_base_url=upstream.url + "/v1"), config)
    built.router = CountingRouter(built.router)  # before the first request builds the stack
    return built


def requests(app: Any, *calls: tuple[str, str, dict[str, Any]],
             root_path: str = "") -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000), root_path=root_path)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://sserelay") as client:
                return [await client.request(method, root_path + url, **kwargs)
                        for method, url, kwargs in calls]
        finally:
            await app.state.gateway.aclose()

    return asyncio.run(run())


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
