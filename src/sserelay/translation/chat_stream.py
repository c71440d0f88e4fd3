"""OpenAI Chat Completions streams as the translation pivot: reading one from an upstream,
writing one to a client (for a chat client whose model speaks another API)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from sserelay.codec import DONE, SSEDecodeError, SSEDecoder
from sserelay.error_shapes import openai_error_event
from sserelay.providers.errors import ProviderError
from sserelay.translation.pipeline import Chunk

__all__ = ["ChatChunkReader", "ChatChunkWriter", "mid_stream_error"]


def mid_stream_error(event: dict[str, Any], redact: Callable[[str], str]) -> ProviderError:
    """An upstream's error event (OpenAI, vLLM or Anthropic shaped), with redacted words."""
    error = event.get("error", event)
    message = error.get("message") if isinstance(error, dict) else error
    if isinstance(message, str) and message:
        text = "The model provider failed mid-answer: " + redact(message)
    else:
        text = "The model provider failed mid-answer."
    return ProviderError("upstream_error", text)


class ChatChunkReader:
    """Chunks from an OpenAI-compatible upstream's stream; `done` after `[DONE]`."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self._redact = redact
        self._decoder = SSEDecoder()
        self.done = False

    def feed(self, data: bytes) -> Iterator[Chunk]:
        """A generator: the chunks before an error in the same read still come out."""
        try:
            events = self._decoder.feed(data)
        except SSEDecodeError as exc:
            raise ProviderError("upstream_malformed", str(exc)) from None
        for event in events:
            if self.done:
                break
            if event.data == "[DONE]":
                self.done = True
                break
            try:
                chunk = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise ProviderError(
                    "upstream_malformed", "The model provider sent a chunk that is not JSON."
                ) from None
            if not isinstance(chunk, dict):
                raise ProviderError("upstream_malformed", "The model provider sent a bad chunk.")
            if event.event == "error" or "error" in chunk or chunk.get("object") == "error":
                raise mid_stream_error(chunk, self._redact)
            choices = chunk.get("choices") or []
            if any(isinstance(c, dict) and c.get("finish_reason") == "error" for c in choices):
                raise ProviderError("upstream_error", "The model provider failed mid-answer.")
            yield chunk


class ChatChunkWriter:
    """Chunks out as an OpenAI chat stream; the usage chunk only if the client asked."""

    def __init__(self, *, include_usage: bool) -> None:
        self._include_usage = include_usage

    def write(self, chunk: Chunk) -> bytes:
        if not chunk.get("choices") and not self._include_usage:
            return b""
        if not self._include_usage:
            chunk.pop("usage", None)
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def finish(self) -> bytes:
        return DONE

    def fail(self, error: ProviderError) -> bytes:
        return openai_error_event(error)
