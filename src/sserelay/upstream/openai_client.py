"""Streaming requests to an OpenAI-compatible upstream, on one pooled aiohttp session.

aiohttp was chosen over httpx by measurement (docs/decisions.md, "Upstream HTTP client").
Anything that is not a complete, well-formed event stream is raised as `UpstreamError`:
a 4xx/5xx answer, a content type other than text/event-stream, and a body that ends
before the provider's end marker. A relay that treats those as a normal end silently
truncates answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from sserelay.codec import ServerSentEvent, SSEDecodeError, SSEDecoder
from sserelay.redaction import redact
from sserelay.upstream import failures, salvage
from sserelay.upstream.watchdog import Timeouts, Watchdog


class OpenAIUpstream:
    """An OpenAI-compatible server: OpenAI itself, vLLM, Ollama, llama.cpp's server..."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeouts: Timeouts | None = None,
        name: str = "openai",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._api_key = api_key
        self.timeouts = timeouts or Timeouts()
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[str, str] = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No pool limit: each relayed stream holds one upstream connection for its whole
            # life, and a limit would queue streams invisibly instead of failing them.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeouts.connect)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=True
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def redact(self, text: str) -> str:
        return redact(text, self._api_key)

    def stream(self, path: str, body: Mapping[str, Any]) -> UpstreamStream:
        """POST `body` to `path` (e.g. "/chat/completions") and stream the answer's events."""
        return UpstreamStream(self, path, body)


class UpstreamStream:
    """One streaming upstream request; use as `async with upstream.stream(...) as s`."""

    def __init__(self, upstream: OpenAIUpstream, path: str, body: Mapping[str, Any]) -> None:
        self._upstream = upstream
        self._path = path
        self._body = orjson.dumps(body)
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> UpstreamStream:
        up = self._upstream
        headers = {**up._headers, "Content-Type": "application/json"}
        try:
            async with asyncio.timeout(up.timeouts.first_token):
                response = await up.session.post(
                    up.base_url + self._path, data=self._body, headers=headers
                )
        except TimeoutError:
            raise failures.not_answering() from None
        except aiohttp.ClientError:
            raise failures.unreachable() from None
        self._response = response
        if response.status >= 400:
            await self._raise_for_status(response)
        ctype = response.headers.get("Content-Type", "")
        if not ctype.lower().startswith("text/event-stream"):
            response.close()
            raise failures.bad_content_type()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            # close(), not release(): if the body was not read to the end, the upstream
            # must see its connection closed, so it stops generating (and billing).
            if self._response.content.at_eof():
                self._response.release()
            else:
                self._response.close()

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        """The upstream's events in order; raises `UpstreamError` if the body breaks off."""
        assert self._response is not None, "use `async with` first"
        decoder = SSEDecoder()
        response = self._response
        content = response.content
        watchdog = Watchdog(response, self._upstream.timeouts)
        try:
            async for chunk in content.iter_any():
                watchdog.reads += 1
                for event in decoder.feed(chunk):
                    yield event
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError):
            if watchdog.expired:
                raise failures.timeout_error(watchdog.expired) from None
            # Relay what arrived before the break, then end as truncated.
            for event in decoder.feed(salvage.buffered(content)):
                yield event
            raise failures.broken_off() from None
        except SSEDecodeError as exc:
            raise failures.malformed(str(exc)) from None
        finally:
            watchdog.stop()
        if watchdog.expired:
            raise failures.timeout_error(watchdog.expired)
        decoder.close()

    async def _raise_for_status(self, response: aiohttp.ClientResponse) -> None:
        try:
            raw = await response.content.read(failures.ERROR_BODY_LIMIT)
        except aiohttp.ClientError:
            raw = b""
        finally:
            response.close()
        raise failures.status_error(
            response.status, raw, response.headers.get("Retry-After"), self._upstream.redact
        )
