"""The HTTP machinery every provider shares: one connection pool, the request, the status map.

Requests go through sserelay's small HTTP/1.1 client (`upstream/h1.py`, httptools' parser),
which can push body bytes straight into the relay (docs/decisions.md, "The hot path: body
bytes pushed, not pulled"). Subclasses say where a request goes and with which headers
(`_url`, `_headers`, `_prepare`); this module turns every way an upstream can fail before the
first byte into a `ProviderError` that says whether retrying or falling back can help.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from sserelay.deadline import deadline
from sserelay.providers.base import Api, Provider, ProviderReply
from sserelay.providers.errors import ProviderError
from sserelay.upstream.h1 import Aborter, H1Error, H1Pool, H1Response
from sserelay.upstream.watchdog import Timeouts, Watchdog

__all__ = ["HttpProvider", "HttpReply"]

_ERROR_BODY_LIMIT = 64 * 1024
_BODY_LIMIT = 64 * 1024 * 1024
_EVENT_STREAM = "text/event-stream"


class HttpReply(ProviderReply):
    """A 2xx response, read chunk by chunk (`read_chunk`) or pushed (`attach`).

    The first-token, idle and total limits are kept by a `Watchdog` (one periodic check per
    stream) rather than a timer per read; its measure of progress is the body pieces the
    response counted (`H1Response.received`), so the hot path adds nothing for it.
    """

    __slots__ = ("_idle", "_on_data", "_response", "_watchdog")

    def __init__(
        self, response: H1Response, idle: float | None = None, total: float | None = None,
    ) -> None:
        self._response = response
        self._idle = idle
        self._on_data: Callable[[bytes], None] | None = None
        limit = math.inf if idle is None else idle
        self._watchdog = Watchdog(Aborter(response), Timeouts(
            first_token=limit, idle=limit, total=math.inf if total is None else total),
            progress=lambda: response.received)

    async def read_chunk(self) -> bytes:
        try:
            chunk = await self._response.read_chunk()
        except H1Error:
            raise self._broken() from None
        return chunk

    def attach(
        self, on_data: Callable[[bytes], None], on_end: Callable[[ProviderError | None], None]
    ) -> None:
        """Push the rest of the body: `on_data(bytes)` per network read, then `on_end(None)`
        at its end or `on_end(error)` when it broke or a limit expired."""

        def end(error: H1Error | None) -> None:
            on_end(None if error is None else self._broken())

        self._response.attach(on_data, end)

    def detach(self) -> None:
        self._response.detach()

    def pause(self) -> None:
        self._response.pause()

    def resume(self) -> None:
        self._response.resume()

    async def read_body(self) -> bytes:
        self._watchdog.stop()  # one deadline for the whole body instead
        try:
            async with asyncio.timeout(self._idle):
                body = await self._response.read_body(_BODY_LIMIT)
        except H1Error:
            raise _truncated() from None
        except TimeoutError:
            self.close()
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
        # A response read to its end goes back to the pool; one still sending is closed: an
        # upstream whose connection is closed stops generating.
        self._response.close()

    def release(self) -> None:
        """The answer is complete ([DONE] seen): keep the connection if its last bytes come."""
        self._watchdog.stop()
        self._response.release()

    def _broken(self) -> ProviderError:
        expired = self._watchdog.expired
        return _stalled(expired) if expired else _truncated()


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
    """A provider reached over HTTP; subclasses describe the wire details."""

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
        self._pool: H1Pool | None = None

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
    def pool(self) -> H1Pool:
        # No limit on connections: each relayed stream holds one upstream connection for its
        # whole life, and a limit would queue streams invisibly instead of failing them.
        if self._pool is None:
            self._pool = H1Pool(connect_timeout=self._connect_timeout)
        return self._pool

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

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
        ctype = response.headers.get("content-type", "").lower()
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
        response = await self._request("GET", url, b"", headers)
        if response.status >= 400:
            raise await self._error_from(response)
        try:
            return orjson.loads(await response.read_body(_BODY_LIMIT))
        except H1Error:
            raise _unreachable() from None
        except orjson.JSONDecodeError:
            raise ProviderError(
                "upstream_malformed", "The model provider sent invalid JSON."
            ) from None
        finally:
            response.close()

    async def _post(self, url: str, payload: bytes, headers: dict[str, str]) -> H1Response:
        return await self._request("POST", url, payload, headers)

    async def _request(
        self, method: str, url: str, payload: bytes, headers: dict[str, str]
    ) -> H1Response:
        try:
            async with deadline(self._read_timeout):
                return await self.pool.request(method, url, headers, payload)
        except TimeoutError:
            raise ProviderError(
                "upstream_timeout", "The model provider did not answer in time.",
                status=504, retryable=True,
            ) from None
        except H1Error:
            raise _unreachable() from None

    async def _error_from(self, response: H1Response) -> ProviderError:
        """Map an upstream 4xx/5xx to what the client gets; see docs/gateway.md, "Errors"."""
        status = response.status
        try:
            async with asyncio.timeout(self._read_timeout):
                raw = (await response.read_body(_ERROR_BODY_LIMIT))[:_ERROR_BODY_LIMIT]
        except (TimeoutError, H1Error):
            raw = b""
        finally:
            response.close()
        fields = _error_fields(raw)
        message = self.redact(fields.get("message") or "")
        kind = _clean(self, fields.get("type"))
        param = _clean(self, fields.get("param"))
        code = _clean(self, fields.get("code"))
        retry_after = _retry_after(response.headers.get("retry-after"))
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
