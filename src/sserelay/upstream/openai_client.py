"""Streaming requests to an OpenAI-compatible upstream, on one pooled aiohttp session.

aiohttp was chosen over httpx by measurement (docs/decisions.md, "Upstream HTTP client").
Anything that is not a complete, well-formed event stream is raised as `UpstreamError`:
a 4xx/5xx answer, a content type other than text/event-stream, and a body that ends
before the provider's end marker. A relay that treats those as a normal end silently
truncates answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from sserelay.codec import ServerSentEvent, SSEDecodeError, SSEDecoder
from sserelay.redaction import redact
from sserelay.upstream.errors import UpstreamError

_ERROR_BODY_LIMIT = 64 * 1024


class OpenAIUpstream:
    """An OpenAI-compatible server: OpenAI itself, vLLM, Ollama, llama.cpp's server..."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        connect_timeout: float = 10.0,
        name: str = "openai",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._api_key = api_key
        self._connect_timeout = connect_timeout
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
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout)
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
            response = await up.session.post(
                up.base_url + self._path, data=self._body, headers=headers
            )
        except TimeoutError:
            raise UpstreamError(
                "upstream_timeout",
                "The model provider did not accept the connection in time.",
                status=504,
            ) from None
        except aiohttp.ClientError:
            raise UpstreamError(
                "upstream_unreachable", "The model provider could not be reached.", status=502
            ) from None
        self._response = response
        if response.status >= 400:
            await self._raise_for_status(response)
        ctype = response.headers.get("Content-Type", "")
        if not ctype.lower().startswith("text/event-stream"):
            response.close()
            raise UpstreamError(
                "upstream_bad_content_type",
                "The model provider answered with something other than an event stream.",
            )
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
        content = self._response.content
        try:
            async for chunk in content.iter_any():
                for event in decoder.feed(chunk):
                    yield event
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError):
            raise UpstreamError(
                "upstream_truncated",
                "The connection to the model provider broke before the answer was complete.",
                ending="truncated",
            ) from None
        except SSEDecodeError as exc:
            raise UpstreamError("upstream_malformed", str(exc)) from None
        decoder.close()

    async def _raise_for_status(self, response: aiohttp.ClientResponse) -> None:
        status = response.status
        try:
            raw = await response.content.read(_ERROR_BODY_LIMIT)
        except aiohttp.ClientError:
            raw = b""
        finally:
            response.close()
        detail = _error_message(raw)
        retry_after = _retry_after(response.headers.get("Retry-After"))
        redacted = self._upstream.redact(detail) if detail else ""
        if status in (401, 403):
            # The client cannot fix sserelay's provider credentials: this is our 502.
            raise UpstreamError(
                "upstream_auth", "The model provider rejected sserelay's credentials.", status=502
            )
        if status == 429:
            raise UpstreamError(
                "rate_limited",
                "The model provider is rate limiting requests; try again shortly."
                + (f" ({redacted})" if redacted else ""),
                status=429,
                retry_after=retry_after or 1.0,
            )
        if status < 500:
            raise UpstreamError(
                "upstream_rejected",
                f"The model provider rejected the request: {redacted or f'HTTP {status}'}",
                status=400 if status in (400, 404, 422) else 502,
            )
        raise UpstreamError(
            "upstream_unavailable",
            f"The model provider failed (HTTP {status}); try again shortly.",
            status=503 if status == 503 else 502,
            retry_after=retry_after,
        )


def _error_message(raw: bytes) -> str:
    """The human part of an OpenAI-shaped (or vLLM-shaped) error body, else ''."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            msg = err.get("message")
            return msg if isinstance(msg, str) else ""
        if isinstance(err, str):
            return err
    return ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
