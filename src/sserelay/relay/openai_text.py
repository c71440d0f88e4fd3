"""The text of an OpenAI-format stream: `delta.content` (chat) or `text` (legacy completions).

This is where the article's endpoints read each chunk. It parses each chunk once with
orjson and looks only at the fields a decision needs. Everything that is not a clean end
(`data: [DONE]`) raises `UpstreamError`, including the three shapes of mid-stream error the
providers use (wire-formats.md, "Errors"): an `error` object, vLLM's `"object": "error"`,
and a chunk with `"finish_reason": "error"`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import orjson

from sserelay.codec import ServerSentEvent
from sserelay.upstream.errors import UpstreamError

Kind = Literal["chat", "completion"]
END_MARKER = "[DONE]"


async def text_deltas(
    events: AsyncIterator[ServerSentEvent],
    kind: Kind,
    redact: Callable[[str], str],
) -> AsyncIterator[str]:
    """Yield each non-empty piece of model text; return on `[DONE]`, raise on anything else."""
    chat = kind == "chat"
    async for event in events:
        data = event.data
        if data == END_MARKER:
            return
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
            continue
        choice = choices[0]
        text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
        if text:
            yield text
        if choice.get("finish_reason") == "error":
            raise UpstreamError("upstream_error", "The model provider failed mid-answer.")
    raise UpstreamError(
        "upstream_truncated",
        "The model provider ended the stream before the answer was complete.",
        ending="truncated",
    )


def _mid_stream_error(chunk: dict[str, Any], redact: Callable[[str], str]) -> str:
    err = chunk.get("error", chunk)
    message = err.get("message") if isinstance(err, dict) else err
    if isinstance(message, str) and message:
        return "The model provider failed mid-answer: " + redact(message)
    return "The model provider failed mid-answer."
