"""Chat Completions chunks relayed as they came, for /v1/streams.

Each upstream event's JSON is passed on untouched (fields sserelay does not know, such as
`service_tier` or tool-call deltas, survive); it is only looked into when it may be a
mid-stream error. The stream always ends with `data: [DONE]`, after a typed error chunk
when the upstream failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from sserelay.codec import DONE, encode_data_bytes
from sserelay.relay.stream_format import Outcome, StreamFormat
from sserelay.streams import Ending
from sserelay.upstream.errors import UpstreamError
from sserelay.upstream.openai_client import OpenAIUpstream, UpstreamStream


def error_chunk(code: str, message: str, ending: str) -> bytes:
    """OpenAI's own mid-stream error shape: `data: {"error": {...}}`."""
    error = {
        "error": {
            "message": message,
            "type": "server_error",
            "param": None,
            "code": code,
            "ending": ending,
        }
    }
    return encode_data_bytes(orjson.dumps(error))


async def chat_payloads(
    stream: UpstreamStream, upstream: OpenAIUpstream, outcome: Outcome
) -> AsyncIterator[bytes]:
    try:
        async for event in stream.events():
            data = event.data
            if data == "[DONE]":
                yield DONE
                return
            if '"error"' in data:
                _raise_if_error(data, upstream)
            outcome.completion_chunks += 1
            yield encode_data_bytes(data.encode())
        raise UpstreamError(
            "upstream_truncated",
            "The model provider ended the stream before the answer was complete.",
            ending="truncated",
        )
    except UpstreamError as exc:
        outcome.ending = Ending(exc.ending)
        yield error_chunk(exc.code, exc.message, exc.ending)
        yield DONE
    finally:
        await stream.__aexit__(None, None, None)


def _stopped(outcome: Outcome) -> list[bytes]:
    """A generation stopped on purpose ends with finish_reason "cancelled" and the usage so far
    (completion_tokens counts the chunks relayed: one token each from OpenAI and llama.cpp)."""
    chunk = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "cancelled"}],
        "usage": {"completion_tokens": outcome.completion_chunks},
    }
    return [encode_data_bytes(orjson.dumps(chunk)), DONE]


def _raise_if_error(data: str, upstream: OpenAIUpstream) -> None:
    try:
        chunk: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            "upstream_malformed", "The model provider sent a chunk that is not valid JSON."
        ) from None
    if isinstance(chunk, dict) and (chunk.get("error") or chunk.get("object") == "error"):
        err = chunk.get("error", chunk)
        message = err.get("message") if isinstance(err, dict) else err
        detail = f": {upstream.redact(message)}" if isinstance(message, str) and message else "."
        raise UpstreamError("upstream_error", "The model provider failed mid-answer" + detail)


CHAT = StreamFormat(
    "chat",
    stopped=_stopped,
    lost=lambda: [
        error_chunk(
            "producer_lost",
            "The sserelay instance producing this answer stopped before it was complete.",
            "truncated",
        ),
        DONE,
    ],
)
