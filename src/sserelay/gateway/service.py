"""The gateway: providers, routes, keys and ledger, and serving one request through them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from sserelay.deadline import deadline
from sserelay.gateway.config import GatewayConfig, UpstreamConfig
from sserelay.gateway.errors import GatewayError
from sserelay.gateway.exchange import Exchange, exchange_for
from sserelay.gateway.policy import apply_policy, check_model
from sserelay.gateway.relay import RelayedStream, StreamFilter, read_first
from sserelay.gateway.retry import with_retries
from sserelay.gateway.router import Route, Router
from sserelay.keys.database import Database, database_path
from sserelay.keys.ledger import Ledger, Usage, UsageRow
from sserelay.keys.store import ClientKey, KeyPolicy, KeyStore
from sserelay.limits import record_completion_tokens
from sserelay.providers import (
    AnthropicProvider,
    Api,
    AzureOpenAIProvider,
    OpenAICompatibleProvider,
    Provider,
    ProviderError,
    ProviderReply,
)
from sserelay.providers.azure import AZURE_API_VERSION
from sserelay.providers.http import HttpProvider
from sserelay.upstream.errors import Ending
from sserelay.web.event_stream import EventStreamResponse

__all__ = ["Gateway", "OpenedStream", "build_provider"]

log = logging.getLogger("sserelay.gateway")
_MODEL_LIST_TTL = 60.0
_MODEL_LIST_TIMEOUT = 5.0


def build_provider(upstream: UpstreamConfig, *, max_duration: float | None = None) -> Provider:
    provider = _build_provider(upstream)
    if isinstance(provider, HttpProvider):
        provider.max_duration = max_duration
    return provider


def _build_provider(upstream: UpstreamConfig) -> Provider:
    common: dict[str, Any] = {
        "headers": upstream.headers,
        "connect_timeout": upstream.connect_timeout,
        "read_timeout": upstream.read_timeout,
    }
    if upstream.base_url is None:
        raise ValueError(f"upstream {upstream.name!r} has no address yet")
    if upstream.kind == "azure":
        return AzureOpenAIProvider(
            upstream.name, upstream.base_url, upstream.api_key,
            deployments=upstream.deployments,
            api_version=upstream.api_version or AZURE_API_VERSION,
            responses=upstream.responses, **common,
        )
    if upstream.kind == "anthropic":
        return AnthropicProvider(upstream.name, upstream.base_url, upstream.api_key, **common)
    return OpenAICompatibleProvider(
        upstream.name, upstream.base_url, upstream.api_key,
        responses=upstream.responses, stream_usage=upstream.stream_usage,
        max_tokens_param=upstream.max_tokens_param, **common,
    )


@dataclass(frozen=True, slots=True)
class OpenedStream:
    """An upstream stream that answered: read `reply`, feed `stream` (a client-format
    filter), relay `first` first, and call `finish(stream, ending)` once at the end."""

    reply: ProviderReply
    stream: StreamFilter
    first: bytes
    finish: Callable[[StreamFilter, Ending], None]


@dataclass(slots=True)
class _Opened:
    route: Route
    reply: ProviderReply
    stream: StreamFilter
    first: bytes


class Gateway:
    """Everything the /v1 endpoints share; `aclose()` when the server stops."""

    def __init__(self, config: GatewayConfig, *, db_path: str | os.PathLike[str] | None = None,
                 max_duration: float | None = None) -> None:
        self.config = config
        self.providers = [build_provider(u, max_duration=max_duration) for u in config.upstreams]
        self.router = Router(
            self.providers, {u.name: u.models for u in config.upstreams},
            config.aliases, config.routes,
        )
        self.db = Database(database_path(db_path or config.database))
        self.keys = KeyStore(self.db, config.key_policies)
        self.ledger = Ledger(self.db)
        self.background: set[asyncio.Task[None]] = set()
        self._listed: tuple[float, list[str]] = (0.0, [])

    async def aclose(self) -> None:
        # Draining streams record their usage as they are cancelled (relay.py, finally).
        for task in list(self.background):
            task.cancel()
        for task in list(self.background):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for provider in self.providers:
            await provider.aclose()
        # After the draining streams' rows: the ledger writes what is still queued.
        self.ledger.close()
        self.db.close()

    # -- one request ---------------------------------------------------------------------

    async def serve(
        self, key: ClientKey | None, api: Api, body: dict[str, Any], body_bytes: int
    ) -> Response:
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise GatewayError(400, "`stream` must be true or false.", "invalid_type",
                               param="stream")
        body, routes, ledger = self._prepare(key, api, body, body_bytes)
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        if not stream:
            return await self._answer(api, body, routes, ledger)
        opened = await self._open(api, body, routes, ledger, strip_usage=not wants_usage)
        relayed = RelayedStream(
            opened.reply, opened.stream, opened.first, finish=ledger.finish_stream,
            abandoned=self.config.abandoned, drain_timeout=self.config.drain_timeout,
            background=self.background,
        )
        return EventStreamResponse(relayed.body(), on_close=relayed.close, push=relayed.push,
                                   heartbeat=self.config.heartbeat,
                                   slow_client_timeout=self.config.slow_client_timeout)

    async def open_stream(
        self, key: ClientKey | None, api: Api, body: dict[str, Any], body_bytes: int,
        *, strip_usage: bool = False,
    ) -> OpenedStream:
        """Route, police, retry and open one streaming request, for callers that relay it
        themselves (into the stream log). The caller records usage with `OpenedStream.finish`
        when the stream ends."""
        body, routes, ledger = self._prepare(key, api, {**body, "stream": True}, body_bytes)
        opened = await self._open(api, body, routes, ledger, strip_usage=strip_usage)
        return OpenedStream(opened.reply, opened.stream, opened.first, ledger.finish_stream)

    def _prepare(
        self, key: ClientKey | None, api: Api, body: dict[str, Any], body_bytes: int
    ) -> tuple[dict[str, Any], list[Route], _LedgerEntry]:
        """The body after the key's policy, the routes for its model, and its ledger row."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(400, "You must provide a model parameter.", "missing_model",
                               param="model")
        policy = key.policy if key is not None else KeyPolicy()
        check_model(policy, model, self.router.target(model))
        routes = self.router.routes(model)
        body = apply_policy(policy, api, body)
        ledger = _LedgerEntry(self, key, api, model, prompt_estimate=body_bytes // 4)
        return body, routes, ledger

    async def _open(
        self, api: Api, body: dict[str, Any], routes: list[Route], ledger: _LedgerEntry,
        *, strip_usage: bool,
    ) -> _Opened:
        async def attempt(route: Route) -> _Opened:
            exchange = exchange_for(api, route.provider)
            reply = await route.provider.send(
                exchange.upstream_api, route.model, exchange.request(body), stream=True
            )
            relay = exchange.stream_filter(body, strip_usage=strip_usage,
                                           redact=route.provider.redact)
            try:
                async with deadline(self.config.first_byte_wait):
                    first = await read_first(reply, relay)
            except TimeoutError:
                first = b""  # a slow first token: start the stream, keep waiting inside it
            except BaseException:
                reply.close()
                raise
            if relay.error is not None and relay.events == 0:
                reply.close()
                raise _failed_before_content(relay.error)
            return _Opened(route, reply, relay, first)

        opened = await with_retries(routes, attempt, self.config.retry)
        ledger.route = opened.route
        return opened

    async def _answer(
        self, api: Api, body: dict[str, Any], routes: list[Route], ledger: _LedgerEntry
    ) -> Response:
        async def attempt(route: Route) -> tuple[Route, bytes, Usage | None]:
            exchange: Exchange = exchange_for(api, route.provider)
            reply = await route.provider.send(
                exchange.upstream_api, route.model, exchange.request(body), stream=False
            )
            try:
                raw = await reply.read_body()
            finally:
                reply.close()
            answer, usage = exchange.answer(raw, body)
            return route, answer, usage

        route, answer, usage = await with_retries(routes, attempt, self.config.retry)
        ledger.route = route
        ledger.finish(usage, events=0, ending="done")
        return Response(answer, media_type="application/json")

    # -- models --------------------------------------------------------------------------

    async def model_names(self, policy: KeyPolicy) -> list[str]:
        """The names this key can use: the configured ones, plus what wildcard upstreams
        list themselves (cached for a minute); only the key's own list if it has one."""
        if "*" not in policy.models:
            return [m for m in policy.models if self._routable(m)]
        names = dict.fromkeys(self.router.known_names())
        names.update(dict.fromkeys(await self._listed_by_upstreams()))
        return list(names)

    def _routable(self, name: str) -> bool:
        try:
            self.router.routes(name)
        except GatewayError:
            return False
        return True

    async def _listed_by_upstreams(self) -> list[str]:
        at, names = self._listed
        if time.monotonic() - at < _MODEL_LIST_TTL:
            return names
        names = []
        for provider in self.router.wildcard_providers():
            try:
                async with asyncio.timeout(_MODEL_LIST_TIMEOUT):
                    names += await provider.list_models()
            except (ProviderError, TimeoutError) as exc:
                log.warning("upstream %s did not list its models (%s)", provider.name,
                            getattr(exc, "code", "timeout"))
        self._listed = (time.monotonic(), names)
        return names


def _failed_before_content(error: ProviderError) -> ProviderError:
    """An upstream stream that failed before its first content: still a real HTTP error.
    A broken connection may be retried; an error event would come again."""
    truncated = error.ending == "truncated"
    return ProviderError(
        error.code, error.message, status=502, retryable=truncated, fallback=truncated,
        ending=error.ending,
    )


class _LedgerEntry:
    """The usage row of one request, written once when it ends."""

    def __init__(self, gateway: Gateway, key: ClientKey | None, api: Api, model: str, *,
                 prompt_estimate: int) -> None:
        self.gateway = gateway
        self.key = key
        self.api = api
        self.model = model
        self.prompt_estimate = prompt_estimate
        self.route: Route | None = None

    def finish_stream(self, stream: StreamFilter, ending: Ending) -> None:
        if stream.error is not None and ending != "aborted":
            ending = stream.error.ending
        self.finish(stream.usage, events=stream.events, ending=ending)

    def finish(self, usage: Usage | None, *, events: int, ending: Ending) -> None:
        assert self.route is not None
        estimated = usage is None
        if usage is None:
            usage = Usage(self.prompt_estimate, events)
        row = UsageRow(
            key_id=self.key.id if self.key else None, api=self.api, model=self.model,
            upstream=self.route.provider.name, upstream_model=self.route.model,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            estimated=estimated, ending=ending,
        )
        # The client's tokens-per-minute window (sserelay.limits) counts the same tokens.
        record_completion_tokens(usage.completion_tokens)
        try:
            self.gateway.ledger.record(row)
        except Exception:  # the answer was relayed; a ledger failure must not break it
            log.exception("could not record usage in %s", self.gateway.db.path)
