"""Error answers before the first byte: a real HTTP status and the body the client's SDK
parses (shapes in sserelay/error_shapes.py)."""

from __future__ import annotations

import math

import orjson
from starlette.responses import Response

from sserelay.error_shapes import (
    Dialect,
    GatewayError,
    anthropic_error,
    anthropic_error_event,
    openai_error,
    openai_error_event,
    responses_error_event,
)
from sserelay.upstream.errors import UpstreamError

__all__ = [
    "Dialect",
    "GatewayError",
    "anthropic_error_event",
    "error_response",
    "openai_error_event",
    "responses_error_event",
]


def error_response(dialect: Dialect, exc: GatewayError | UpstreamError) -> Response:
    """The HTTP answer for a failure before the first byte."""
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(math.ceil(retry_after))
    if dialect == "anthropic":
        body = {"type": "error", "error": anthropic_error(exc)}
    else:
        body = {"error": openai_error(exc)}
    return Response(
        orjson.dumps(body), status_code=exc.status, headers=headers,
        media_type="application/json",
    )
