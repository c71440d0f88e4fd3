"""Error answers in words: OpenAI-shaped JSON bodies with the right status, never a traceback."""

from __future__ import annotations

import math

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sserelay.observability import hooks
from sserelay.upstream.errors import UpstreamError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class RequestError(Exception):
    """A client mistake, reported as `status` with `message` (words a person can act on)."""

    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def error_response(
    status: int, message: str, code: str, *, retry_after: float | None = None
) -> JSONResponse:
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else None
    body = {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "api_error"),
            "param": None,
            "code": code,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


async def handle_request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return error_response(exc.status, exc.message, exc.code)


async def handle_upstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UpstreamError)
    hooks.upstream_failed("relay", exc.code)  # the relay endpoints' upstream, before a byte
    return error_response(exc.status, exc.message, exc.code, retry_after=exc.retry_after)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"There is nothing at {request.url.path}."
    elif exc.status_code == 405:
        allowed = exc.headers.get("Allow", "") if exc.headers else ""
        message = f"{request.method} is not allowed on {request.url.path}; use {allowed}."
    else:
        message = str(exc.detail)
    response = error_response(exc.status_code, message, "http_error")
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    # The traceback goes to the server log (uvicorn prints it); the client gets words only.
    return error_response(500, "sserelay failed while handling this request.", "internal_error")
