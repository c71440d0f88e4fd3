"""A translated stream: upstream bytes → chat chunks → the client's events, sans-IO.

Every translation goes through one pivot, OpenAI's `chat.completion.chunk` as a dict, so
each format needs one reader (its events → chunks) and one writer (chunks → its events), and
any reader composes with any writer: Anthropic events reach a Responses client through the
same chunks that reach a chat client. Translation parses every event, which the byte-for-byte
pass-through (gateway/openai_passthrough.py) avoids; it is only used when the upstream does
not speak the client's API.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from sserelay.keys.ledger import Usage
from sserelay.providers.errors import ProviderError

__all__ = ["Chunk", "ChunkReader", "ChunkWriter", "TranslatingFilter", "truncated"]

Chunk = dict[str, Any]
"""An OpenAI `chat.completion.chunk`, parsed."""


def truncated() -> ProviderError:
    return ProviderError(
        "upstream_truncated",
        "The model provider ended the stream before the answer was complete.",
        ending="truncated",
    )


class ChunkReader(Protocol):
    """Upstream body bytes in, chunks out; raises ProviderError for an upstream error."""

    done: bool

    def feed(self, data: bytes) -> Iterable[Chunk]: ...


class ChunkWriter(Protocol):
    """Chunks in, the client's wire bytes out."""

    def write(self, chunk: Chunk) -> bytes: ...
    def finish(self) -> bytes: ...
    def fail(self, error: ProviderError) -> bytes: ...


def _carries_content(choice: object) -> bool:
    delta = choice.get("delta") if isinstance(choice, dict) else None
    return isinstance(delta, dict) and bool(delta.get("content") or delta.get("tool_calls"))


class TranslatingFilter:
    """A `StreamFilter` (gateway/relay.py) made of a reader and a writer."""

    def __init__(self, reader: ChunkReader, writer: ChunkWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.done = False
        self.passes_plain = False  # every read goes through `feed` (StreamFilter)
        self.error: ProviderError | None = None
        self.usage: Usage | None = None
        self.events = 0  # chunks with content or tool-call deltas

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return b""
        out: list[bytes] = []
        try:
            for chunk in self._reader.feed(data):
                usage = chunk.get("usage")
                if isinstance(usage, dict):
                    self.usage = Usage.from_openai(usage)
                if any(_carries_content(c) for c in chunk.get("choices") or ()):
                    self.events += 1
                out.append(self._writer.write(chunk))
        except ProviderError as error:
            out.append(self.fail(error))
            return b"".join(out)
        if self._reader.done:
            self.done = True
            if self.usage is None:
                # Some servers (llama-cpp-python) ignore stream_options.include_usage. The
                # client's format promises a usage report: count the chunks relayed, as the
                # ledger does (it marks such rows estimated).
                estimate = {"prompt_tokens": 0, "completion_tokens": self.events}
                out.append(self._writer.write({"choices": [], "usage": estimate}))
            out.append(self._writer.finish())
        return b"".join(out)

    def end(self) -> bytes:
        return b"" if self.done else self.fail(truncated())

    def fail(self, error: ProviderError) -> bytes:
        if self.done:
            return b""
        self.done = True
        self.error = error
        return self._writer.fail(error)
