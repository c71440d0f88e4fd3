"""Providers against real HTTP servers on loopback: the fake upstream, and a tiny aiohttp
server for the failure shapes the fake does not script."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from sserelay.providers import (
    AnthropicProvider,
    AzureOpenAIProvider,
    OpenAICompatibleProvider,
    ProviderError,
)
from tests.conftest import PROVIDER_KEY, Upstream

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def failure(base_url: str, **kwargs: Any) -> ProviderError:
    provider = OpenAICompatibleProvider("t", base_url + "/v1", PROVIDER_KEY, **kwargs)
    try:
        await provider.send("chat", "m", {"messages": []}, stream=True)
    except ProviderError as exc:
        return exc
    finally:
        await provider.aclose()
    raise AssertionError("no ProviderError")


def test_upstream_error_words_pass_without_keys_or_addresses() -> None:
    """An upstream 4xx keeps status, param, code and words, minus keys, URLs and addresses."""

    async def echo(request: web.Request) -> web.Response:
        message = (f"Incorrect value; you sent {request.headers['Authorization']} from "
                   "http://10.1.2.3:8080/internal and 10.9.8.7:443")
        return web.json_response(
            {"error": {"message": message, "type": "invalid_request_error",
                       "param": "messages", "code": "bad_messages"}}, status=400)

    async def run() -> ProviderError:
        async with serve(echo) as url:
            return await failure(url)

    error = asyncio.run(run())
    assert (error.status, error.param, error.code, error.retryable) == (
        400, "messages", "bad_messages", False)
    for secret in (PROVIDER_KEY, "10.1.2.3", "10.9.8.7", "/internal"):
        assert secret not in error.message


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"Retry-After": "7"}, (429, True, 7.0)),
        (500, {}, (502, True, None)),
        (503, {"Retry-After": "2"}, (503, True, 2.0)),
        (529, {}, (503, True, None)),
        (401, {}, (502, False, None)),
        (404, {}, (404, False, None)),
    ],
)
def test_statuses_say_whether_to_retry(
    status: int, headers: dict[str, str], expected: tuple[int, bool, float | None]
) -> None:
    """429 and 5xx are retryable, 401 is a 502 that falls back, other 4xx are final."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "no"}}, status=status, headers=headers)

    async def run() -> ProviderError:
        async with serve(answer) as url:
            return await failure(url)

    error = asyncio.run(run())
    assert (error.status, error.retryable, error.retry_after) == expected
    assert error.fallback == (status != 404)


def test_unreachable_upstream_is_retryable() -> None:
    """Nothing listening: a retryable 502, not an exception from aiohttp."""
    from sserelay.testing.procs import free_port

    error = asyncio.run(failure(f"http://127.0.0.1:{free_port()}"))
    assert (error.code, error.status, error.retryable) == ("upstream_unreachable", 502, True)


def test_json_instead_of_an_event_stream_is_an_error() -> None:
    """A 200 with JSON to a streaming request is a failure, not an empty stream."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"choices": []})

    async def run() -> ProviderError:
        async with serve(answer) as url:
            return await failure(url)

    assert asyncio.run(run()).code == "upstream_bad_content_type"


def test_openai_compatible_request_asks_for_usage(upstream: Upstream) -> None:
    """A stream request asks for usage, sends a Bearer key, spells the cap as configured."""

    async def run() -> None:
        provider = OpenAICompatibleProvider(
            "t", upstream.url + "/v1", PROVIDER_KEY, max_tokens_param="max_completion_tokens")
        reply = await provider.send("chat", "gpt-4o-mini", {
            "messages": [{"role": "user", "content": "echo:azure-free"}], "max_tokens": 3,
            "stream_options": {"include_obfuscation": False}}, stream=True)
        while await reply.read_chunk():
            pass
        reply.close()
        await provider.aclose()

    asyncio.run(run())
    record = next(r for r in reversed(upstream.requests()) if "azure-free" in str(r["body"]))
    assert record["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert record["body"]["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert record["body"]["max_completion_tokens"] == 3 and "max_tokens" not in record["body"]


def test_azure_request_uses_deployment_url_version_and_api_key(upstream: Upstream) -> None:
    """Azure: deployment path, api-version query, the key in api-key, no model in the body."""

    async def run() -> None:
        provider = AzureOpenAIProvider(
            "az", upstream.url, PROVIDER_KEY, deployments={"gpt-4o": "prod-4o"})
        with pytest.raises(ProviderError):  # the fake has no Azure paths: a 404
            await provider.send("chat", "gpt-4o", {"messages": [], "user": "azure-probe"},
                                stream=True)
        await provider.aclose()

    asyncio.run(run())
    record = next(r for r in reversed(upstream.requests()) if "azure-probe" in str(r["body"]))
    assert record["path"] == "/openai/deployments/prod-4o/chat/completions"
    assert record["query"] == "api-version=2024-10-21"
    assert record["headers"]["api-key"] == PROVIDER_KEY
    assert "authorization" not in record["headers"]
    assert "model" not in record["body"]
    assert record["body"]["stream_options"] == {"include_usage": True}


def test_azure_model_without_deployment_is_not_found() -> None:
    """A model with no configured deployment is a 404 before any request is made."""

    async def run() -> ProviderError:
        provider = AzureOpenAIProvider("az", "http://127.0.0.1:9", "k", deployments={})
        try:
            await provider.send("chat", "gpt-4o", {}, stream=False)
        except ProviderError as exc:
            return exc
        finally:
            await provider.aclose()
        raise AssertionError("no error")

    assert asyncio.run(run()).status == 404


def test_anthropic_request_headers(upstream: Upstream) -> None:
    """Anthropic: POST /v1/messages with x-api-key and anthropic-version, no Bearer token."""

    async def run() -> None:
        provider = AnthropicProvider("claude", upstream.url, PROVIDER_KEY)
        with contextlib.suppress(ProviderError):
            await provider.send("messages", "claude-x", {"messages": [], "metadata": {
                "user_id": "anthropic-probe"}}, stream=True)
        await provider.aclose()

    asyncio.run(run())
    record = next(r for r in reversed(upstream.requests()) if "anthropic-probe" in str(r["body"]))
    assert record["path"] == "/v1/messages"
    assert record["headers"]["x-api-key"] == PROVIDER_KEY
    assert record["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in record["headers"]
    assert record["body"]["model"] == "claude-x" and record["body"]["stream"] is True
