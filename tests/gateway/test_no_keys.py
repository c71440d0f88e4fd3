"""With no client key configured the gateway answers loopback clients only, and says so."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
import pytest

from sserelay.gateway import GatewayConfig
from sserelay.keys import Database, KeyStore
from sserelay.settings import Settings
from sserelay.web.app import create_app
from tests.conftest import PROVIDER_KEY, Upstream, start_relay
from tests.gateway.conftest import write_config


def _app(config: Path, db: Path) -> object:
    """The real ASGI app, reached in-process so the client address can be any address."""
    loaded = GatewayConfig.load(config, env={"OPENAI_API_KEY": PROVIDER_KEY})
    gateway_config = dataclasses.replace(loaded, database=str(db))
    return create_app(Settings(), gateway_config)


def post(app: object, client_host: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client_host, 40000))  # type: ignore[arg-type]
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://sserelay") as client:
                return await client.post(
                    "/v1/chat/completions", headers=headers or {},
                    json={"model": "gpt-4o-mini",
                          "messages": [{"role": "user", "content": "echo:hi"}]},
                )
        finally:
            await app.state.gateway.aclose()  # type: ignore[attr-defined]

    return asyncio.run(run())


@pytest.fixture
def config(tmp_path: Path, upstream: Upstream) -> Path:
    return write_config(tmp_path / "gateway.toml", upstream.url)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_loopback_client_is_served_without_a_key(config: Path, tmp_path: Path, host: str) -> None:
    """No keys exist: a client on this machine is answered, with or without a key header."""
    reply = post(_app(config, tmp_path / "empty.sqlite3"), host)
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == "hi"


def test_remote_client_is_refused_while_no_key_exists(config: Path, tmp_path: Path) -> None:
    """No keys exist: a client from another address gets 401 that says how to fix it."""
    reply = post(_app(config, tmp_path / "empty.sqlite3"), "192.0.2.10",
                 {"Authorization": "Bearer srk-made-up"})
    assert reply.status_code == 401
    assert "sserelay keys create" in reply.json()["error"]["message"]


def test_once_a_key_exists_loopback_needs_one_too(config: Path, tmp_path: Path) -> None:
    """After the first key is created even loopback clients must present a key."""
    db = tmp_path / "one.sqlite3"
    _, secret = KeyStore(Database(db)).create("first")
    app = _app(config, db)
    assert post(app, "127.0.0.1").status_code == 401
    assert post(app, "192.0.2.10", {"Authorization": f"Bearer {secret}"}).status_code == 200


def test_startup_says_loopback_only(upstream: Upstream, config: Path, tmp_path: Path) -> None:
    """With no keys, startup says only loopback clients are answered, and creates no file."""
    db = tmp_path / "never.sqlite3"
    with start_relay(upstream.url, "--config", str(config), env={"SSERELAY_DB": str(db)}) as relay:
        output = relay.output()
    assert "loopback clients only" in output
    assert not db.exists()
