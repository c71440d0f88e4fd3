"""Chat Completions chunks for /v1/streams, as the gateway relays them.

The gateway opens the stream (routing, key policy, retries) and its client-format filter
passes each upstream chunk's JSON on untouched, or translates it when the upstream speaks
another API. Here that output is cut into single events for the stream log, so each gets
its own id. The stream always ends with `data: [DONE]`, after a typed error chunk when the
upstream failed (`error_shapes.openai_error_event`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from sserelay.codec import DONE, encode_data_bytes
from sserelay.error_shapes import openai_error_event
from sserelay.gateway.service import OpenedStream
from sserelay.providers import ProviderError
from sserelay.relay.stream_format import Outcome, StreamFormat
from sserelay.streams import Ending
from sserelay.upstream.errors import Ending as LedgerEnding
from sserelay.upstream.errors import UpstreamError

_BLANK = b"\n\n"


async def chat_payloads(opened: OpenedStream, outcome: Outcome) -> AsyncIterator[bytes]:
    """One payload per event, from the first bytes to `[DONE]`; usage recorded at the end."""
    reply, stream = opened.reply, opened.stream
    read, feed = reply.read_chunk, stream.feed
    ledger_ending: LedgerEnding = "aborted"  # unless the loop below completes
    out = opened.first
    try:
        while True:
            if out:
                # The filter writes whole LF-framed events whose data is one JSON line, so a
                # blank line can only be an event boundary.
                for event in out.split(_BLANK)[:-1]:
                    outcome.completion_chunks += 1
                    yield event + _BLANK
            if stream.done:
                break
            try:
                chunk = await read()
            except ProviderError as error:
                out = stream.fail(error)
                continue
            out = feed(chunk) if chunk else stream.end()
        ledger_ending = stream.error.ending if stream.error else "done"
        outcome.ending = Ending(ledger_ending)
        if outcome.readers_left and ledger_ending == "done":
            ledger_ending = "aborted"  # the client left; the answer was drained to its end
    finally:
        reply.close()
        opened.finish(stream, ledger_ending)


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
