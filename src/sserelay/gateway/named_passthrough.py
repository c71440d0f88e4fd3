"""Relaying a stream of named events (Responses API, Anthropic Messages) untouched, sans-IO.

Both formats name every event (`event: response.output_text.delta`, `event: message_start`)
and repeat the name as the JSON's `type`, so the name alone says which few events need a
decision: the ones that end the stream, carry the usage, or report an error. Only those are
parsed; every other event's data is forwarded as it came, re-framed as
`event: <name>\\ndata: <payload>\\n\\n`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from sserelay.codec import SSEDecodeError, SSEDecoder, encode_event
from sserelay.error_shapes import anthropic_error_event, responses_error_event
from sserelay.keys.ledger import Usage
from sserelay.providers.base import Api
from sserelay.providers.errors import ProviderError

__all__ = ["NamedEventFilter"]

# Responses API: the stream ends with one of these (wire-formats.md); there is no [DONE].
_RESPONSES_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# Anthropic: the usage is in message_start (input) and message_delta (output, cumulative).
_MESSAGES_USAGE = frozenset({"message_start", "message_delta"})


class NamedEventFilter:
    """One stream's state; the same interface as `OpenAIStreamFilter`."""

    def __init__(self, api: Api, *, redact: Callable[[str], str]) -> None:
        self._anthropic = api == "messages"
        self._redact = redact
        self._decoder = SSEDecoder()
        self._input_tokens = 0
        self._forwarded = 0
        self.done = False
        self.passes_plain = False  # every read goes through `feed` (StreamFilter)
        self.error: ProviderError | None = None
        self.usage: Usage | None = None
        self.events = 0

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        try:
            events = self._decoder.feed(chunk)
        except SSEDecodeError as exc:
            out = b"".join([self._event(e.event, e.data) for e in exc.events])
            return out + self.fail(ProviderError("upstream_malformed", str(exc)))
        return b"".join([self._event(e.event, e.data) for e in events])

    def end(self) -> bytes:
        if self.done:
            return b""
        return self.fail(ProviderError(
            "upstream_truncated",
            "The model provider ended the stream before the answer was complete.",
            ending="truncated",
        ))

    def fail(self, error: ProviderError) -> bytes:
        if self.done:
            return b""
        self.done = True
        self.error = error
        if self._anthropic:
            return anthropic_error_event(error)
        return responses_error_event(error, self._forwarded)

    def _event(self, name: str, data: str) -> bytes:
        if self.done:
            return b""
        if name == "error":
            return self.fail(ProviderError("upstream_error", self._error_message(data)))
        if self._anthropic:
            if name in _MESSAGES_USAGE:
                self._anthropic_usage(name, data)
            elif name == "message_stop":
                self.done = True
        elif name in _RESPONSES_ENDS:
            self._responses_usage(data)
            self.done = True
        if name.endswith("delta"):
            self.events += 1
        self._forwarded += 1
        return encode_event(data, event=None if name == "message" else name)

    def _anthropic_usage(self, name: str, data: str) -> None:
        event = _loads(data)
        holder = event.get("message") if name == "message_start" else event
        usage = holder.get("usage") if isinstance(holder, dict) else None
        if not isinstance(usage, dict):
            return
        if isinstance(usage.get("input_tokens"), int):
            self._input_tokens = usage["input_tokens"]
        output = usage.get("output_tokens")
        self.usage = Usage(self._input_tokens, output if isinstance(output, int) else 0)

    def _responses_usage(self, data: str) -> None:
        response = _loads(data).get("response")
        usage = response.get("usage") if isinstance(response, dict) else None
        if isinstance(usage, dict):
            self.usage = Usage.from_responses(usage)

    def _error_message(self, data: str) -> str:
        event = _loads(data)
        error = event.get("error", event)
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str) and message:
            return "The model provider failed mid-answer: " + self._redact(message)
        return "The model provider failed mid-answer."


def _loads(data: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
