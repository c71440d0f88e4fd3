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
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from sserelay.codec import ServerSentEvent, SSEDecodeError, SSEDecoder
from sserelay.redaction import redact
from sserelay.upstream.errors import UpstreamError

_ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Limits on an upstream stream, in seconds; each ends the stream with a typed ending."""

    connect: float = 10.0
    first_token: float = 60.0  # from the request to the first event
    idle: float = 60.0  # between two reads once the stream has started
    total: float = 600.0  # the whole answer

    @property
    def tick(self) -> float:
        # The watchdog's period: a quarter of the shortest limit, so a limit is enforced
        # within 25 % of its value without a timer per chunk.
        return max(0.05, min(self.first_token, self.idle, self.total) / 4)


_TIMEOUT_ERRORS = {
    "first_token": UpstreamError(
        "first_token_timeout",
        "The model provider did not start answering in time.",
        status=504,
    ),
    "idle": UpstreamError(
        "idle_timeout", "The model provider stopped sending mid-answer.", ending="truncated"
    ),
    "total": UpstreamError(
        "duration_limit",
        "The answer took longer than sserelay allows and was cut off.",
        ending="truncated",
    ),
}


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
            raise UpstreamError(
                "upstream_timeout", "The model provider did not answer in time.", status=504
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
        response = self._response
        content = response.content
        watchdog = _Watchdog(response, self._upstream.timeouts)
        try:
            async for chunk in content.iter_any():
                watchdog.reads += 1
                for event in decoder.feed(chunk):
                    yield event
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError):
            if watchdog.expired:
                raise _TIMEOUT_ERRORS[watchdog.expired] from None
            raise UpstreamError(
                "upstream_truncated",
                "The connection to the model provider broke before the answer was complete.",
                ending="truncated",
            ) from None
        except SSEDecodeError as exc:
            raise UpstreamError("upstream_malformed", str(exc)) from None
        finally:
            watchdog.stop()
        if watchdog.expired:
            raise _TIMEOUT_ERRORS[watchdog.expired]
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


class _Watchdog:
    """Enforces the first-token, idle and total limits with one periodic timer per stream.

    The hot path only increments `reads`; the timer compares it with what it saw last time.
    On expiry it closes the response, which ends the pending read.
    """

    def __init__(self, response: aiohttp.ClientResponse, timeouts: Timeouts) -> None:
        self.reads = 0
        self.expired: str | None = None
        self._response = response
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self._started = self._last_progress = self._loop.time()
        self._seen = 0
        self._handle = self._loop.call_later(timeouts.tick, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        limits = self._timeouts
        if self.reads != self._seen:
            self._seen, self._last_progress = self.reads, now
        if now - self._started > limits.total:
            self.expired = "total"
        elif self.reads == 0 and now - self._started > limits.first_token:
            self.expired = "first_token"
        elif self.reads and now - self._last_progress > limits.idle:
            self.expired = "idle"
        if self.expired:
            self._response.close()
        else:
            self._handle = self._loop.call_later(limits.tick, self._check)

    def stop(self) -> None:
        self._handle.cancel()


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
