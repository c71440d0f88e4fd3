"""The one-line calls the relay code makes to report; each does nothing outside a request.

They are called once per request or per stream (never per chunk), from the places that know
what happened: the gateway's retries and authentication, the article endpoints, following
and resuming, generations (context.py explains how they find the request).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sserelay.observability.context import StreamMarks, current_request

__all__ = [
    "generation_ended",
    "generation_started",
    "note_key",
    "note_request",
    "prompt_of",
    "replayed",
    "resumed",
    "upstream_failed",
    "waiting_on_upstream",
]

# A generation's format names the surface that started it.
_GENERATION_APIS = {"article": "article", "chat": "streams", "chat_completions": "chat"}


def waiting_on_upstream() -> AbstractContextManager[None]:
    """Time the block as waiting for the upstream (Server-Timing's `upstream`)."""
    ctx = current_request()
    return nullcontext() if ctx is None else ctx.waiting_on_upstream()


def upstream_failed(provider: str, status: int | str) -> None:
    ctx = current_request()
    if ctx is not None:
        ctx.telemetry.upstream_error(provider, status)


def note_key(key_id: str) -> None:
    ctx = current_request()
    if ctx is not None:
        ctx.key_id = key_id


def note_request(model: str | None, upstream: str | None, prompt: Any) -> None:
    """The model and upstream a relay request goes to; the prompt is kept only when content
    logging is on."""
    ctx = current_request()
    if ctx is not None:
        ctx.model, ctx.upstream = model, upstream
        ctx.note_prompt(prompt)


def prompt_of(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of a /v1 request body that hold the prompt."""
    return {k: body[k] for k in ("system", "instructions", "messages", "prompt", "input")
            if k in body}


def resumed(result: str) -> None:
    ctx = current_request()
    if ctx is not None:
        ctx.telemetry.resumed(result)


def replayed() -> None:
    ctx = current_request()
    if ctx is not None:
        ctx.telemetry.replayed()


def generation_started(fmt: str) -> None:
    ctx = current_request()
    if ctx is not None:
        ctx.telemetry.stream_started(_GENERATION_APIS.get(fmt, fmt))


def generation_ended(stream_id: str, fmt: str, ending: str, marks: StreamMarks,
                     completion_chunks: int) -> None:
    ctx = current_request()
    if ctx is not None:
        ctx.telemetry.generation_ended(
            ctx, api=_GENERATION_APIS.get(fmt, fmt), ending=ending, marks=marks,
            completion_chunks=completion_chunks, stream_id=stream_id,
        )
