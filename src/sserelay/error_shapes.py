"""Errors in the client's own dialect: OpenAI-shaped or Anthropic-shaped, as bodies and as
mid-stream events. Below the gateway and the translation layer, which both write them.

The official SDKs pick an exception class from the HTTP status (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 429 RateLimitError, 5xx
InternalServerError), so before the first byte every failure is a real status with the body
the SDK parses. After the first byte the status is gone; the failure becomes the last event
of the stream, in the shape that client's SDK raises on (see docs/gateway.md, "Errors").
"""

from __future__ import annotations

from typing import Literal

import orjson

from sserelay.codec import DONE
from sserelay.providers.errors import ProviderError
from sserelay.upstream.errors import UpstreamError

__all__ = [
    "Dialect",
    "GatewayError",
    "anthropic_error",
    "anthropic_error_event",
    "openai_error",
    "openai_error_event",
    "responses_error_event",
]

Dialect = Literal["openai", "anthropic"]

_OPENAI_TYPES = {
    400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
    404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
    415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
}
# Anthropic's documented error types ("Errors", HTTP errors).
_ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 415: "invalid_request_error",
    422: "invalid_request_error", 429: "rate_limit_error", 503: "overloaded_error",
    504: "timeout_error",
}


class GatewayError(Exception):
    """A request sserelay refuses itself: no key, a model the key may not use, bad JSON..."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        param: str | None = None,
        type: str | None = None,  # the OpenAI error field is called "type"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type


def _fields(exc: GatewayError | UpstreamError) -> tuple[str | None, str | None]:
    if isinstance(exc, GatewayError | ProviderError):
        return exc.type, exc.param
    return None, None


def openai_error(exc: GatewayError | UpstreamError) -> dict[str, object]:
    kind, param = _fields(exc)
    if exc.status >= 500 and not isinstance(exc, GatewayError):
        kind = "server_error"
    error: dict[str, object] = {
        "message": exc.message,
        "type": kind or _OPENAI_TYPES.get(exc.status, "server_error"),
        "param": param,
        "code": exc.code,
    }
    if isinstance(exc, UpstreamError):
        error["ending"] = exc.ending  # sserelay's typed ending: "error" or "truncated"
    return error


def anthropic_error(exc: GatewayError | UpstreamError) -> dict[str, object]:
    kind = _ANTHROPIC_TYPES.get(exc.status, "api_error")
    return {"type": kind, "message": exc.message}


def openai_error_event(exc: GatewayError | UpstreamError) -> bytes:
    """What OpenAI sends when a stream fails after it started, then the end marker: the
    openai SDK raises `APIError` on a chunk with an `error` object."""
    return b"data: " + orjson.dumps({"error": openai_error(exc)}) + b"\n\n" + DONE


def anthropic_error_event(exc: GatewayError | UpstreamError) -> bytes:
    """Anthropic's mid-stream `event: error`; the anthropic SDK raises on it."""
    body = orjson.dumps({"type": "error", "error": anthropic_error(exc)})
    return b"event: error\ndata: " + body + b"\n\n"


def responses_error_event(exc: GatewayError | UpstreamError, sequence_number: int) -> bytes:
    """The Responses API's `error` event, which ends a stream that failed after it started."""
    body = orjson.dumps({
        "type": "error", "code": exc.code, "message": exc.message, "param": None,
        "sequence_number": sequence_number,
    })
    return b"event: error\ndata: " + body + b"\n\n"
