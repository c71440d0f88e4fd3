"""The HTTP machinery every provider shares: one aiohttp session, the request, the status map.

aiohttp was chosen over httpx by measurement (docs/decisions.md, "Upstream HTTP client").
Subclasses say where a request goes and with which headers (`_url`, `_headers`, `_prepare`);
this module turns every way an upstream can fail before the first byte into a `ProviderError`
that says whether retrying or falling back can help.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from sserelay.providers.base import Api, Provider, ProviderReply
from sserelay.providers.errors import ProviderError
from sserelay.upstream import salvage
from sserelay.upstream.watchdog import Timeouts, Watchdog

__all__ = ["HttpProvider", "HttpReply"]

_ERROR_BODY_LIMIT = 64 * 1024
_BODY_LIMIT = 64 * 1024 * 1024
_EVENT_STREAM = "text/event-stream"


class HttpReply(ProviderReply):
    """A 2xx aiohttp response, read chunk by chunk with no layer in between.

    The idle limit is kept by a `Watchdog` (one periodic check per stream) rather than
    aiohttp's per-read `sock_read` timer: the hot path only counts reads.
    """

    __slots__ = ("_broken", "_content", "_idle", "_response", "_watchdog")

    def __init__(
        self, response: aiohttp.ClientResponse, idle: float | None = None,
        total: float | None = None,
    ) -> None:
        self._response = response
        self._content = response.content
        self._idle = idle
        self._broken: ProviderError | None = None
        limit = math.inf if idle is None else idle
        self._watchdog = Watchdog(response, Timeouts(
            first_token=limit, idle=limit, total=math.inf if total is None else total))

    async def read_chunk(self) -> bytes:
        watchdog = self._watchdog
        if self._broken is not None:
            raise self._broken
        try:
            chunk = await self._content.readany()  # everything buffered, as one bytes
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError):
            error = _stalled(watchdog.expired) if watchdog.expired else _truncated()
            rest = b"" if watchdog.expired else salvage.buffered(self._content)
            if rest:  # what arrived before the break goes out first; the error next call
                self._broken = error
                return rest
            raise error from None
        if not chunk and watchdog.expired:
            raise _stalled(watchdog.expired)
        watchdog.reads += 1
        return chunk

    async def read_body(self) -> bytes:
        self._watchdog.stop()  # one deadline for the whole body instead
        try:
            async with asyncio.timeout(self._idle):
                body = await self._content.read(_BODY_LIMIT + 1)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError):
            raise _truncated() from None
        except TimeoutError:
            raise ProviderError(
                "upstream_timeout", "The model provider did not finish its answer in time.",
                status=504, retryable=True,
            ) from None
        if len(body) > _BODY_LIMIT:
            self.close()
            raise ProviderError("upstream_too_large", "The model provider's answer is too big.")
        return body

    def close(self) -> None:
        self._watchdog.stop()
        # close(), not release(), unless the body was read to its end: an upstream whose
        # connection is closed stops generating; a released one is reused by the pool.
        if self._content.at_eof():
            self._response.release()
        else:
            self._response.close()


def _stalled(limit: str | None = None) -> ProviderError:
    if limit == "total":
        return ProviderError(
            "duration_limit", "The answer took longer than sserelay allows and was cut off.",
            status=504, ending="truncated",
        )
    return ProviderError(
        "upstream_timeout",
        "The model provider stopped sending before the answer was complete.",
        status=504, ending="truncated",
    )


def _truncated() -> ProviderError:
    return ProviderError(
        "upstream_truncated",
        "The connection to the model provider broke before the answer was complete.",
        ending="truncated",
    )


class HttpProvider(Provider):
    """A provider reached over HTTP with aiohttp; subclasses describe the wire details."""

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 300.0,
    ) -> None:
        super().__init__(name, api_key)
        self.base_url = base_url.rstrip("/")
        self._extra_headers = dict(headers or {})
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        # The longest a whole streamed answer may take (`--max-duration`); None: no limit.
        self.max_duration: float | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- what subclasses describe --------------------------------------------------------

    def _url(self, api: Api, model: str) -> str:
        raise NotImplementedError

    def _auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _prepare(self, api: Api, model: str, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        """The body as this upstream wants it (e.g. `model` set to the upstream's name)."""
        return {**body, "model": model, "stream": stream}

    # -- the shared machinery -------------------------------------------------------------

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

    async def send(
        self, api: Api, model: str, body: dict[str, Any], *, stream: bool
    ) -> HttpReply:
        if not self.supports(api):
            raise ProviderError(
                "unsupported_api", f"This model does not support the {api} API.", status=400
            )
        payload = orjson.dumps(self._prepare(api, model, body, stream))
        headers = {
            **self._extra_headers,
            **self._auth_headers(),
            "Content-Type": "application/json",
            "Accept": _EVENT_STREAM if stream else "application/json",
        }
        response = await self._post(self._url(api, model), payload, headers)
        if response.status >= 400:
            raise await self._error_from(response)
        ctype = response.headers.get("Content-Type", "").lower()
        if stream != ctype.startswith(_EVENT_STREAM):
            response.close()
            raise ProviderError(
                "upstream_bad_content_type",
                "The model provider answered with "
                + ("something other than an event stream." if stream else "an event stream."),
                upstream_status=response.status, fallback=True,
            )
        return HttpReply(response, self._read_timeout, self.max_duration)

    async def _get_json(self, url: str) -> Any:
        headers = {**self._extra_headers, **self._auth_headers(), "Accept": "application/json"}
        try:
            async with self.session.get(url, headers=headers) as response:
                if response.status >= 400:
                    raise await self._error_from(response)
                return orjson.loads(await response.content.read(_BODY_LIMIT))
        except aiohttp.ClientError:
            raise _unreachable() from None
        except orjson.JSONDecodeError:
            raise ProviderError(
                "upstream_malformed", "The model provider sent invalid JSON."
            ) from None

    async def _post(
        self, url: str, payload: bytes, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        try:
            async with asyncio.timeout(self._read_timeout):
                return await self.session.post(url, data=payload, headers=headers)
        except TimeoutError:
            raise ProviderError(
                "upstream_timeout", "The model provider did not answer in time.",
                status=504, retryable=True,
            ) from None
        except aiohttp.ClientError:
            raise _unreachable() from None

    async def _error_from(self, response: aiohttp.ClientResponse) -> ProviderError:
        """Map an upstream 4xx/5xx to what the client gets; see docs/gateway.md, "Errors"."""
        status = response.status
        try:
            raw = await response.content.read(_ERROR_BODY_LIMIT)
        except (TimeoutError, aiohttp.ClientError):
            raw = b""
        finally:
            response.close()
        fields = _error_fields(raw)
        message = self.redact(fields.get("message") or "")
        kind = _clean(self, fields.get("type"))
        param = _clean(self, fields.get("param"))
        code = _clean(self, fields.get("code"))
        retry_after = _retry_after(response.headers.get("Retry-After"))
        if status in (401, 403):
            # The client cannot fix sserelay's provider credentials: a 502, and another
            # upstream may still work.
            return ProviderError(
                "upstream_auth", "The model provider rejected sserelay's credentials.",
                upstream_status=status, fallback=True,
            )
        if status == 429:
            return ProviderError(
                code or "rate_limited",
                "The model provider is rate limiting requests; try again shortly."
                + (f" ({message})" if message else ""),
                status=429, upstream_status=status, type=kind or "rate_limit_error",
                retry_after=retry_after, retryable=True,
            )
        if status < 500:
            return ProviderError(
                code or "upstream_rejected",
                message or f"The model provider rejected the request (HTTP {status}).",
                status=status if status in (400, 404, 409, 413, 422) else 400,
                upstream_status=status, type=kind or "invalid_request_error", param=param,
            )
        # 529 is Anthropic's "overloaded": the same as 503 to a client.
        return ProviderError(
            "upstream_unavailable",
            f"The model provider failed (HTTP {status}); try again shortly.",
            status=503 if status in (503, 529) else 502, upstream_status=status,
            retry_after=retry_after, retryable=True,
        )


def _unreachable() -> ProviderError:
    return ProviderError(
        "upstream_unreachable", "The model provider could not be reached.", retryable=True
    )


def _clean(provider: Provider, value: object) -> str | None:
    return provider.redact(value) if isinstance(value, str) and value else None


def _error_fields(raw: bytes) -> dict[str, Any]:
    """The error object of an OpenAI-, Anthropic- or vLLM-shaped error body, else {}."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(body, dict):
        return {}
    error = body.get("error", body)  # vLLM: {"object": "error", "message": ...}
    if isinstance(error, str):
        return {"message": error}
    return error if isinstance(error, dict) else {}


def _retry_after(value: str | None) -> float | None:
    # RFC 9110 also allows an HTTP date; providers send seconds, and a date is ignored.
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
