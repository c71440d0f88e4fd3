"""The text of an OpenAI-format stream: `delta.content` (chat) or `text` (legacy completions).

This is where the article's endpoints read each chunk. `read_text_event` decides about one
event: it parses the chunk once with orjson and looks only at the fields a decision needs.
Everything that is not a clean end (`data: [DONE]`) is an `UpstreamError`, including the
three shapes of mid-stream error the providers use (wire-formats.md, "Errors"): an `error`
object, vLLM's `"object": "error"`, and a chunk with `"finish_reason": "error"`.
`text_deltas` (async) and `iter_text_deltas` (blocking, for WSGI) are the same few lines
around it, as httpx-sse's sync and async paths are around its decoder.

`TextReader` is `read_text_event` for one stream, without a parse per chunk where it can
prove the answer: a stream's chunks repeat the same bytes around the text (`{"id":...,
"choices":[{"index":0,"delta":{"content":"` ... `"},"logprobs":null,...}`). Once a parsed
chunk shows where its text sits, and a probe string put in that place parses to the same
decisions with the probe as the text, a chunk that is that template around a plain string
literal (no quote, backslash or control character) has that string as its text, with no
failure: the parse would see the same tokens in the same places. Anything else is parsed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Literal

import orjson

from sserelay.codec import ServerSentEvent
from sserelay.speedups import TemplateText
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


# A string no upstream sends as a whole chunk's text: put where a learned template's text
# sits, it must come back as the text.
_PROBE = "sserelay-template-probe"
# How many templates a stream may learn: one whose chunks vary elsewhere (OpenAI's
# per-chunk `obfuscation`) misses every time and must not be re-learned (a parse) forever.
_LEARNING = 4
# A template that served this many chunks earns one more learning when it stops matching
# (llama.cpp's `created` changes every second).
_EARNED = 32


class TextReader(TemplateText):
    """`read_text_event` for the events of one stream, skipping the parse of chunks that
    are a proven template around a plain string (the module's docstring says why that is
    exact). Call it with each event's data.

    `plain_text(data)` is TemplateText's (sserelay/speedups.py), one C call: what
    `self(data.decode())` would return as the text, as bytes, when `data` (an event's data,
    UTF-8) is the proven template (`_prefix_bytes`, `_suffix_bytes`) around printable
    ASCII, with no decode and no encode; None for anything else: call `self` with the
    decoded data, which decides it (and keeps the template's account of hits and misses)."""

    __slots__ = ("_chat", "_learning", "_prefix", "_redact", "_suffix")

    def __init__(self, chat: bool, redact: Callable[[str], str]) -> None:
        super().__init__()  # no template yet: `_prefix_bytes` None, `_hits` 0
        self._chat = chat
        self._redact = redact
        self._prefix: str | None = None  # up to and including the text's opening quote
        self._suffix = ""  # from the text's closing quote
        self._learning = _LEARNING

    def __call__(self, data: str) -> tuple[str, UpstreamError | None] | None:
        prefix = self._prefix
        if prefix is not None:
            suffix = self._suffix
            cut = len(data) - len(suffix)
            if (
                cut >= len(prefix)
                and data.startswith(prefix)
                and data.endswith(suffix)
            ):
                text = data[len(prefix) : cut]
                if '"' not in text and "\\" not in text and text.isprintable():
                    self._hits += 1
                    return text, None
            if self._hits >= _EARNED:
                self._learning += 1
            self._prefix = self._prefix_bytes = None
            self._hits = 0
        step = read_text_event(data, self._chat, self._redact)
        if self._learning and step is not None and step[0] and step[1] is None:
            self._learn(data, step[0])
        return step

    def _learn(self, data: str, text: str) -> None:
        if '"' in text or "\\" in text or not text.isprintable():
            return  # escaped in the chunk: its literal is not the text itself
        literal = '"' + text + '"'
        at = data.find(literal)
        if at < 0 or data.find(literal, at + 1) >= 0:
            return  # escaped differently, or in two places: no single slot to learn
        self._learning -= 1
        prefix, suffix = data[: at + 1], data[at + len(literal) - 1 :]
        try:
            probed = read_text_event(prefix + _PROBE + suffix, self._chat, self._redact)
        except UpstreamError:
            return
        if probed == (_PROBE, None):
            self._prefix, self._suffix = prefix, suffix
            self._prefix_bytes, self._suffix_bytes = prefix.encode(), suffix.encode()


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
    read = TextReader(kind == "chat", redact)
    async for event in events:
        step = read(event.data)
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
    read = TextReader(kind == "chat", redact)
    for event in events:
        step = read(event.data)
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
