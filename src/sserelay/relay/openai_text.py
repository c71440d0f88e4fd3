"""The text of an OpenAI-format stream: `delta.content` (chat) or `text` (legacy completions).

This is where the article's endpoints read each chunk. `read_text_event` decides about one
event: it parses the chunk once with orjson and looks only at the fields a decision needs.
Everything that is not a clean end (`data: [DONE]`) is an `UpstreamError`, including the
three shapes of mid-stream error the providers use (wire-formats.md, "Errors"): an `error`
object, vLLM's `"object": "error"`, and a chunk with `"finish_reason": "error"`.
`text_deltas` (async) and `iter_text_deltas` (blocking, for WSGI) are the same few lines
around it, as httpx-sse's sync and async paths are around its decoder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Literal

import orjson

from sserelay.codec import ServerSentEvent
from sserelay.upstream.errors import UpstreamError

Kind = Literal["chat", "completion"]
END_MARKER = "[DONE]"


def read_text_event(
    data: str, chat: bool, redact: Callable[[str], str]
) -> tuple[str, UpstreamError | None] | None:
    """One event's share of the answer: None at the end marker, else `(text, failure)`.

    `text` is the model text the chunk carries ('' for none: a role, usage or keep-alive
    chunk). `failure`, when not None, is to be raised once `text` is relayed: a chunk can carry
    the last piece of text and say that the generation failed. Raises `UpstreamError` itself for
    a chunk that carries no answer at all (not JSON, an error object).
    """
    if data == END_MARKER:
        return None
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            "upstream_malformed", "The model provider sent a chunk that is not valid JSON."
        ) from None
    if not isinstance(chunk, dict):
        raise UpstreamError(
            "upstream_malformed", "The model provider sent a chunk of an unexpected shape."
        )
    if "error" in chunk or chunk.get("object") == "error":
        raise UpstreamError("upstream_error", _mid_stream_error(chunk, redact))
    choices = chunk.get("choices")
    if not choices:  # the usage chunk, or a provider's keep-alive chunk
        return "", None
    choice = choices[0]
    text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
    failure = None
    if choice.get("finish_reason") == "error":
        failure = UpstreamError("upstream_error", "The model provider failed mid-answer.")
    return text or "", failure


def ended_early() -> UpstreamError:
    """The event stream ended cleanly at the HTTP level but without the end marker."""
    return UpstreamError(
        "upstream_truncated",
        "The model provider ended the stream before the answer was complete.",
        ending="truncated",
    )


async def text_deltas(
    events: AsyncIterator[ServerSentEvent],
    kind: Kind,
    redact: Callable[[str], str],
) -> AsyncIterator[str]:
    """Yield each non-empty piece of model text; return on `[DONE]`, raise on anything else."""
    chat = kind == "chat"
    async for event in events:
        step = read_text_event(event.data, chat, redact)
        if step is None:
            return
        text, failure = step
        if text:
            yield text
        if failure is not None:
            raise failure
    raise ended_early()


def iter_text_deltas(
    events: Iterable[ServerSentEvent],
    kind: Kind,
    redact: Callable[[str], str],
) -> Iterator[str]:
    """`text_deltas` for a blocking event iterator (the WSGI integrations)."""
    chat = kind == "chat"
    for event in events:
        step = read_text_event(event.data, chat, redact)
        if step is None:
            return
        text, failure = step
        if text:
            yield text
        if failure is not None:
            raise failure
    raise ended_early()


def _mid_stream_error(chunk: dict[str, Any], redact: Callable[[str], str]) -> str:
    err = chunk.get("error", chunk)
    message = err.get("message") if isinstance(err, dict) else err
    if isinstance(message, str) and message:
        return "The model provider failed mid-answer: " + redact(message)
    return "The model provider failed mid-answer."
