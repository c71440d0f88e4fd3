"""Relaying an OpenAI-format stream (chat or legacy completions) byte for byte, sans-IO.

Upstream body bytes in, client bytes out. This is the gateway's hot path, so it does not
decode and re-encode events: when a network read holds only whole, LF-framed `data: ...`
events (what OpenAI, vLLM and llama.cpp send) and none of them needs a decision, the read is
forwarded as it is, one send for all its events. A few byte searches per event (C loops)
decide whether JSON must be parsed at all: only for `[DONE]`, a non-null `"usage"`, anything
containing `"error"`, and data not shaped like an object (`{...}`: a chunk cut short). Content
text cannot fake those keys, because JSON escapes the quotes inside strings; a value that
merely equals "usage" or "error" costs one parse. The JSON of other chunks is not validated.

Everything else (CRLF, comments, events cut across reads) goes through the shared
`SSEDecoder` and is re-framed as `data: <payload>\\n\\n`: the payload bytes stay the same.
What sserelay changes is listed in docs/gateway.md, "What a relayed stream changes".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from sserelay.codec import DONE, SSEDecodeError, SSEDecoder, encode_event
from sserelay.error_shapes import openai_error_event
from sserelay.keys.ledger import Usage
from sserelay.providers.errors import ProviderError
from sserelay.speedups import plain_event, usage_present

__all__ = ["OpenAIStreamFilter"]

_DATA = b"data: "
_DONE_PAYLOAD = b"[DONE]"
_ERROR_WORD = b'"error"'
_BLANK = b"\n\n"
# Searched as ints and with find(): `13 in chunk` is one memchr and `chunk.find(word)` skips
# the buffer protocol that `word in chunk` goes through; together ~0.5 µs less per chunk
# (sserelay/codec/decoder.py says more).
_CR = 0x0D
_LF = 0x0A


def _needs_a_look(data: bytes) -> bool:
    """Whether an event must be parsed: it may carry an error or the usage, or it is not
    shaped like a JSON object at all (a chunk cut short, `[DONE]`). Content text cannot
    produce `"error"` or `"usage"` with bare quotes: JSON escapes them inside strings."""
    return data[-1:] != b"}" or data.find(_ERROR_WORD) >= 0 or usage_present(data)


class OpenAIStreamFilter:
    """One stream's state. `feed` each upstream read, then `end()` (or `fail()` on a broken
    connection); each returns the bytes to send the client, possibly b"".

    `strip_usage`: drop the usage-only chunk (`"choices":[]`), which the gateway asked for
    on its own account. `redact` cleans upstream error text before a client sees it.
    """

    __slots__ = (
        "_at_boundary",
        "_decoder",
        "_ends_lf",
        "_redact",
        "_started",
        "_strip_usage",
        "done",
        "error",
        "events",
        "passes_plain",
        "usage",
    )

    def __init__(self, *, strip_usage: bool, redact: Callable[[str], str]) -> None:
        self._strip_usage = strip_usage
        self._redact = redact
        self._decoder = SSEDecoder()
        # The decoder sees the first read (it strips a BOM); after that, reads that start
        # where the decoder holds nothing may bypass it.
        self._started = False
        self._at_boundary = True
        self._ends_lf = False
        # Whether a read that is one plain event (`speedups.plain_event`) comes out of
        # `feed` as it is: the decoder holds nothing and the stream goes on. A pushing
        # relay may then send it without calling `feed`, adding one to `events`.
        self.passes_plain = False
        self.done = False  # the stream ended, cleanly ([DONE]) or with an error event
        self.error: ProviderError | None = None
        self.usage: Usage | None = None
        self.events = 0  # chunks relayed: an estimate of completion tokens if usage never comes

    def feed(self, chunk: bytes) -> bytes:
        if self.done or not chunk:
            return b""
        if self.passes_plain:
            # A paced model sends one event per read: `data: {...}\n\n` with no other line
            # break, recognised in one C call (sserelay/speedups.py).
            if plain_event(chunk):
                self.events += 1
                return chunk
            if _CR not in chunk and chunk[-2:] == _BLANK:
                out = self._feed_framed(chunk)
                if out is not None:
                    return out
        return self._feed_decoder(chunk)

    def end(self) -> bytes:
        """The upstream body ended. Without `[DONE]` that is a truncated answer, not an end."""
        if self.done:
            return b""
        return self._fail(
            ProviderError(
                "upstream_truncated",
                "The model provider ended the stream before the answer was complete.",
                ending="truncated",
            )
        )

    def fail(self, error: ProviderError) -> bytes:
        """The connection broke mid-stream: end the client's stream with the error."""
        return b"" if self.done else self._fail(error)

    def _fail(self, error: ProviderError) -> bytes:
        self.done = True
        self.passes_plain = False
        self.error = error
        return openai_error_event(error)

    # -- the fast path: whole LF-framed data-only events --------------------------------

    def _feed_framed(self, chunk: bytes) -> bytes | None:
        pieces = chunk.split(_BLANK)
        pieces.pop()  # empty: the chunk ends with a blank line
        plain = True
        for piece in pieces:
            if not piece.startswith(_DATA) or _LF in piece:
                return None  # not a one-line data event: let the decoder read it
            if _needs_a_look(piece) or piece[6:7] != b"{":
                plain = False
        self._ends_lf = True
        if plain:
            self.events += len(pieces)
            return chunk  # byte for byte, one send for every event in the read
        return b"".join([self._event(piece[6:]) for piece in pieces])

    # -- the general path: the shared decoder ------------------------------------------

    def _feed_decoder(self, chunk: bytes) -> bytes:
        self._started = True
        try:
            events = self._decoder.feed(chunk)
        except SSEDecodeError as exc:
            done = b"".join([self._event(e.data.encode()) for e in exc.events])
            return done + self.fail(ProviderError("upstream_malformed", str(exc)))
        # A stream that ends in a blank line has dispatched everything and holds no partial
        # line (a line ending is LF, CR or CRLF, so "\n\n" always ends an empty line).
        self._at_boundary = chunk.endswith(_BLANK) or (chunk == b"\n" and self._ends_lf)
        self._ends_lf = chunk.endswith(b"\n")
        self.passes_plain = self._at_boundary and not self.done
        out: list[bytes] = []
        for event in events:
            payload = event.data.encode()
            if event.event == "error":  # some servers name their error events
                out.append(self._fail(ProviderError("upstream_error", self._error_text(payload))))
            else:
                out.append(self._event(payload))
        return b"".join(out)

    # -- one event's decisions ----------------------------------------------------------

    def _event(self, payload: bytes) -> bytes:
        if self.done:
            return b""
        if payload == _DONE_PAYLOAD:
            self.done = True
            self.passes_plain = False
            return DONE
        if _needs_a_look(payload) or payload[:1] != b"{":
            return self._inspect(payload)
        self.events += 1
        return self._frame(payload)

    def _frame(self, payload: bytes) -> bytes:
        if _LF in payload:  # multi-line data from the upstream: keep it one event
            return encode_event(payload.decode("utf-8", "replace"))
        return _DATA + payload + _BLANK

    def _inspect(self, payload: bytes) -> bytes:
        try:
            chunk: Any = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return self._fail(_malformed("a chunk that is not JSON"))
        if not isinstance(chunk, dict):
            return self._fail(_malformed("a chunk of an unexpected shape"))
        choices = chunk.get("choices")
        # Mid-stream errors, as OpenAI, vLLM and some gateways send them (wire-formats.md).
        if "error" in chunk or chunk.get("object") == "error" or _finished_with_error(choices):
            return self._fail(ProviderError("upstream_error", self._error_message(chunk)))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage.from_openai(usage)
            if self._strip_usage and not choices:
                return b""
        self.events += 1
        return self._frame(payload)

    def _error_text(self, payload: bytes) -> str:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            chunk = None
        return self._error_message(chunk if isinstance(chunk, dict) else {})

    def _error_message(self, chunk: dict[str, Any]) -> str:
        error = chunk.get("error", chunk)
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message:
            return "The model provider failed mid-answer: " + self._redact(message)
        return "The model provider failed mid-answer."


def _malformed(what: str) -> ProviderError:
    return ProviderError("upstream_malformed", f"The model provider sent {what}.")


def _finished_with_error(choices: object) -> bool:
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") == "error" for c in choices
    )
