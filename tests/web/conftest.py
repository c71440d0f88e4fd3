"""What the web tests share: the app in-process, its router counted, and requests to it."""

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
