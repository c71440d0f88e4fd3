"""Chat Completions chunks for /v1/streams, as the gateway relays them.

The gateway opens the stream (routing, key policy, retries) and its client-format filter
passes each upstream chunk's JSON on untouched, or translates it when the upstream speaks
another API. Here that output is cut into single events for the stream log, so each gets
its own id. The stream always ends with `data: [DONE]`, after a typed error chunk when the
upstream failed (`error_shapes.openai_error_event`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import orjson

from sserelay.codec import DONE, encode_data_bytes
from sserelay.error_shapes import openai_error_event
from sserelay.gateway.relay import StreamFilter
from sserelay.gateway.service import OpenedStream
from sserelay.providers import ProviderError
from sserelay.relay.stream_format import Emit, Outcome, Pushed, StreamFormat
from sserelay.speedups import PlainPass
from sserelay.streams import Ending
from sserelay.upstream.errors import Ending as LedgerEnding
from sserelay.upstream.errors import UpstreamError

_BLANK = b"\n\n"
_LF = b"\n"


async def chat_payloads(
    opened: OpenedStream, outcome: Outcome
) -> AsyncGenerator[bytes, None]:
    """One payload per event, from the first bytes to `[DONE]`; usage recorded at the end."""
    reply, stream = opened.reply, opened.stream
    read, feed = reply.read_chunk, stream.feed
    ledger_ending: LedgerEnding = "aborted"  # unless the loop below completes
    out = opened.first
    try:
        while True:
            if out:
                for event in _events(out):
                    outcome.completion_chunks += 1
                    yield event
            if stream.done:
                break
            try:
                chunk = await read()
            except ProviderError as error:
                out = stream.fail(error)
                continue
            out = feed(chunk) if chunk else stream.end()
        ledger_ending = _ended(stream, outcome)
    finally:
        reply.close()
        opened.finish(stream, ledger_ending)


def _one_event(out: bytes) -> bool:
    # The filter writes whole LF-framed events whose data is one JSON line: a read whose
    # first line break is its next-to-last byte is one event. (A read it says no to is
    # split at its blank lines, which is right for any number of events.) One memchr:
    # ~0.5 µs less per chunk than looking for the first blank line.
    return out.find(_LF) == len(out) - 2


def _events(out: bytes) -> list[bytes]:
    if _one_event(out):
        return [out]
    return [event + _BLANK for event in out.split(_BLANK)[:-1]]


def _ended(stream: StreamFilter, outcome: Outcome) -> LedgerEnding:
    ledger_ending: LedgerEnding = stream.error.ending if stream.error else "done"
    outcome.ending = Ending(ledger_ending)
    if outcome.readers_left and ledger_ending == "done":
        ledger_ending = "aborted"  # the client left; the answer was drained to its end
    return ledger_ending


class ChatPayloads(Pushed):
    """`chat_payloads`, which can also be pushed: each upstream read is filtered, cut into
    events and emitted in the call that read it."""

    def __init__(self, opened: OpenedStream, outcome: Outcome) -> None:
        self._opened = opened
        self._outcome = outcome
        self._pulled: AsyncGenerator[bytes, None] | None = None
        self._ledger_ending: LedgerEnding = "aborted"  # unless the stream completes

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._pulled = pulled = chat_payloads(self._opened, self._outcome)
        return pulled

    async def run(self, emit: Emit) -> None:
        opened, outcome = self._opened, self._outcome
        reply, stream = opened.reply, opened.stream
        feed = stream.feed
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The plain reads go to `emit` from C (PlainPass), counted in `stream.events` alone;
        # they join the completion count whenever Python runs next (`fed`, the end).
        seen = stream.events

        def deliver(out: bytes) -> None:
            for event in _events(out):
                outcome.completion_chunks += 1
                if not emit(event):
                    stop()
                    return

        def stop() -> None:
            reply.detach()
            if not ended.done():
                ended.set_result(None)

        def fed(chunk: bytes) -> None:
            nonlocal seen
            outcome.completion_chunks += stream.events - seen
            out = feed(chunk)
            seen = stream.events
            if out:
                deliver(out)
            if stream.done:
                stop()

        def on_end(error: ProviderError | None) -> None:
            out = stream.fail(error) if error is not None else stream.end()
            if out:
                deliver(out)
            stop()

        try:
            if opened.first:
                deliver(opened.first)
            if not stream.done and not ended.done():
                # Per read, no Python frame when it is one plain event: the filter's own
                # first check, the count and the emit in one C call, as the pass-through
                # does (docs/decisions.md, "The chunk path, fourth round").
                reply.attach(PlainPass(stream, emit, stop, fed), on_end)
                await ended
            if stream.done:
                self._ledger_ending = _ended(stream, outcome)
        finally:
            reply.detach()
            outcome.completion_chunks += stream.events - seen

    async def aclose(self) -> None:
        if self._pulled is not None:
            await self._pulled.aclose()  # it records the usage itself
            return
        opened = self._opened
        if opened.stream.error is None and opened.stream.done:
            opened.reply.release()
        else:
            opened.reply.close()
        opened.finish(opened.stream, self._ledger_ending)


def _stopped(outcome: Outcome) -> list[bytes]:
    """A generation stopped on purpose ends with finish_reason "cancelled" and the usage so far
    (completion_tokens counts the chunks relayed: one token each from OpenAI and llama.cpp)."""
    chunk = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "cancelled"}],
        "usage": {"completion_tokens": outcome.completion_chunks},
    }
    return [encode_data_bytes(orjson.dumps(chunk)), DONE]


_LOST = UpstreamError(
    "producer_lost",
    "The sserelay instance producing this answer stopped before it was complete.",
    ending="truncated",
)

CHAT = StreamFormat("chat", stopped=_stopped, lost=lambda: [openai_error_event(_LOST)])
# The same bytes, for streams started by /v1/chat/completions (told apart in metrics/logs).
CHAT_COMPLETIONS = StreamFormat("chat_completions", stopped=CHAT.stopped, lost=CHAT.lost)
