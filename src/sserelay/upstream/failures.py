"""Every way an upstream request can fail, as the `UpstreamError` a client is shown.

Sans-IO and shared by both upstream clients (the async `openai_client` on `h1`, blocking
`http.client` in `sync_client`), so the codes, words and statuses a client sees do not depend
on which server framework sserelay runs in. See docs/decisions.md, "Upstream failures map to
statuses a client can act on".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import orjson

from sserelay.upstream.errors import UpstreamError

__all__ = [
    "ERROR_BODY_LIMIT",
    "Limit",
    "bad_content_type",
    "broken_off",
    "malformed",
    "not_answering",
    "status_error",
    "timeout_error",
    "unreachable",
]

ERROR_BODY_LIMIT = 64 * 1024
"""How much of an error answer's body is read for its message."""

Limit = Literal["first_token", "idle", "total"]


def not_answering() -> UpstreamError:
    """No answer (status line and headers) within the first-token limit."""
    return UpstreamError(
        "upstream_timeout", "The model provider did not answer in time.", status=504
    )


def unreachable() -> UpstreamError:
    return UpstreamError(
        "upstream_unreachable", "The model provider could not be reached.", status=502
    )


def bad_content_type() -> UpstreamError:
    return UpstreamError(
        "upstream_bad_content_type",
        "The model provider answered with something other than an event stream.",
    )


def broken_off() -> UpstreamError:
    """The connection broke (or the body ended) before the provider's end marker."""
    return UpstreamError(
        "upstream_truncated",
        "The connection to the model provider broke before the answer was complete.",
        ending="truncated",
    )


def malformed(detail: str) -> UpstreamError:
    return UpstreamError("upstream_malformed", detail)


def timeout_error(limit: Limit) -> UpstreamError:
    """A stream limit expired mid-stream; a fresh error each time (they are raised across
    threads and tasks, and an exception instance carries its traceback)."""
    if limit == "first_token":
        return UpstreamError(
            "first_token_timeout", "The model provider did not start answering in time.", status=504
        )
    if limit == "idle":
        return UpstreamError(
            "idle_timeout", "The model provider stopped sending mid-answer.", ending="truncated"
        )
    return UpstreamError(
        "duration_limit",
        "The answer took longer than sserelay allows and was cut off.",
        ending="truncated",
    )


def status_error(
    status: int, body: bytes, retry_after: str | None, redact: Callable[[str], str]
) -> UpstreamError:
    """An upstream 4xx/5xx answer (`body` its first bytes) as what sserelay answers instead."""
    detail = _error_message(body)
    redacted = redact(detail) if detail else ""
    after = _retry_after(retry_after)
    if status in (401, 403):
        # The client cannot fix sserelay's provider credentials: this is our 502.
        return UpstreamError(
            "upstream_auth", "The model provider rejected sserelay's credentials.", status=502
        )
    if status == 429:
        return UpstreamError(
            "rate_limited",
            "The model provider is rate limiting requests; try again shortly."
            + (f" ({redacted})" if redacted else ""),
            status=429,
            retry_after=after or 1.0,
        )
    if status < 500:
        return UpstreamError(
            "upstream_rejected",
            f"The model provider rejected the request: {redacted or f'HTTP {status}'}",
            status=400 if status in (400, 404, 422) else 502,
        )
    return UpstreamError(
        "upstream_unavailable",
        f"The model provider failed (HTTP {status}); try again shortly.",
        status=503 if status == 503 else 502,
        retry_after=after,
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
