"""The article endpoints' wire format, sans-IO: model text as event data, a typed error ending,
and `data: [DONE]` last.

One place for the bytes, so the ASGI endpoints (web/article.py) and the Flask and Django
integrations send exactly the same stream. Each payload is one complete SSE event without an
`id:` field; the transport that numbers events puts `id: <stream>:<seq>` in front.
"""

from __future__ import annotations

import orjson

from sserelay.codec import DONE, encode_event
from sserelay.relay.openai_text import END_MARKER
from sserelay.relay.stream_format import Outcome, StreamFormat
from sserelay.upstream.errors import UpstreamError

__all__ = ["ARTICLE", "DONE", "error_event", "text_events"]

_SPLIT_END_MARKER = (encode_event(END_MARKER[:-1]), encode_event(END_MARKER[-1:]))


def text_events(text: str) -> tuple[bytes, ...]:
    """One piece of model text as events whose data, concatenated, is exactly `text`.

    Usually one event (multi-line `data:` fields, so no token can forge an event). A text of
    exactly "[DONE]" would read as the end marker, so it goes as two events, "[DONE" and "]".
    """
    if text == END_MARKER:
        return _SPLIT_END_MARKER
    return (encode_event(text),)


def error_event(exc: UpstreamError) -> bytes:
    """The typed ending of a stream that failed after its first byte (`[DONE]` follows)."""
    error = {"error": {"message": exc.message, "code": exc.code, "ending": exc.ending}}
    return encode_event(orjson.dumps(error).decode(), event="error")


def _stopped(outcome: Outcome) -> list[bytes]:
    """Stopped on purpose (the reader left, or DELETE): say so, then end."""
    ending = {"ending": "cancelled", "completion_chunks": outcome.completion_chunks}
    return [encode_event(orjson.dumps(ending).decode(), event="cancelled"), DONE]


_LOST = UpstreamError(
    "producer_lost",
    "The sserelay instance producing this answer stopped before it was complete.",
    ending="truncated",
)

ARTICLE = StreamFormat("article", stopped=_stopped, lost=lambda: [error_event(_LOST), DONE])
