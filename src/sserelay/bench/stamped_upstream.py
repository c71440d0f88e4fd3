"""The benchmark's upstream: stamped, paced OpenAI streams at the least CPU per token.

Run by the benchmark as ``python -m sserelay.bench.stamped_upstream --port P``. It answers
``POST /v1/chat/completions`` and ``/v1/completions`` with exactly the bytes the test suite's
fake upstream (`sserelay.testing.fake_upstream`) sends for the same request, using its
request parser and chunk encoder, but serves them from a bare asyncio protocol on uvloop
and httptools: no ASGI server, no task or coroutine per stream, one timer callback per
token. Everything else the fake scripts (errors, stalls, drops) is the fake's business;
this serves ``tokens``, ``rate`` and ``stamp`` and refuses the rest with 400.

Why it exists: the benchmark runs the upstream, the relay and the load generator on the
same two cores. Under the ASGI fake, the upstream alone took about as much CPU per token as
the relay under test, so at 500 streams the machine's run queue, not the relay, set the p99
latency of every target (docs/decisions.md, "The benchmark's own processes").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import time
from collections.abc import Sequence

import httptools
import orjson
import uvloop

from sserelay.testing.fake_upstream import (
    BadRequest,
    ChunkEncoder,
    ReplyPlan,
    Scenario,
    error_body,
    plan_reply,
)
from sserelay.web.descriptors import reserve_descriptors

__all__ = ["StampedUpstream", "main"]

# What the fake can script and this does not serve, with the value that scripts nothing.
_UNSUPPORTED = {
    field.name: getattr(Scenario(), field.name)
    for field in dataclasses.fields(Scenario)
    if field.name not in ("tokens", "rate", "stamp")
}


def _response_head(status: int, content_type: bytes, extra: bytes = b"") -> bytes:
    phrase = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}[status]
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%stransfer-encoding: chunked\r\n\r\n"
        % (status, phrase, content_type, extra)
    )


def _chunk(data: bytes) -> bytes:
    """One piece of a chunked body (RFC 9112, section 7.1)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


_LAST_CHUNK = b"0\r\n\r\n"
_SSE_HEAD = _response_head(
    200, b"text/event-stream; charset=utf-8", b"cache-control: no-cache\r\n"
)


def _error(status: int, message: str) -> bytes:
    body = _chunk(error_body(status, message))
    return _response_head(status, b"application/json") + body + _LAST_CHUNK


class _Stream:
    """One paced response: a timer callback per token, on the schedule `start + i / rate`."""

    __slots__ = (
        "_due",
        "_encoder",
        "_handle",
        "_index",
        "_interval",
        "_loop",
        "_plan",
        "_protocol",
    )  # fmt: skip

    def __init__(self, protocol: _Connection, plan: ReplyPlan, encoder: ChunkEncoder) -> None:
        self._protocol, self._plan, self._encoder = protocol, plan, encoder
        self._loop = asyncio.get_running_loop()
        rate = plan.scenario.rate
        self._interval = 1.0 / rate if rate else 0.0
        self._index = 0
        self._due = self._loop.time()
        self._handle: asyncio.Handle | None = None

    def start(self) -> None:
        first = self._encoder.first()
        self._protocol.write(_SSE_HEAD + (_chunk(first) if first is not None else b""))
        self._tick()

    def _tick(self) -> None:
        self._handle = None
        plan, encoder = self._plan, self._encoder
        if self._index == len(plan.tokens):
            tail = [encoder.finish()]
            if plan.include_usage:
                tail.append(encoder.usage(self._index))
            tail.append(encoder.event(b"[DONE]"))
            self._protocol.write(b"".join(map(_chunk, tail)) + _LAST_CHUNK)
            self._protocol.stream_ended()
            return
        self._protocol.write(_chunk(encoder.content(plan.content(self._index))))
        self._index += 1
        # Falling behind under load, carry on from now rather than catch up in a burst.
        now = self._loop.time()
        self._due = max(self._due + self._interval, now)
        self._handle = self._loop.call_at(self._due, self._tick)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Connection(asyncio.Protocol):
    """One client connection, HTTP/1.1 keep-alive, one request at a time."""

    def __init__(self, server: StampedUpstream) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._body: list[bytes] = []
        self._stream: _Stream | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self._server.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.write(_error(400, "malformed HTTP request"))
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._server.connection_closed()
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._body = b"", []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        path = self._url.split(b"?", 1)[0]
        if method != b"POST" or path not in (b"/v1/chat/completions", b"/v1/completions"):
            self.write(_error(404, f"Unknown request URL: {method.decode()} {path.decode()}."))
            return
        try:
            plan = self._plan(path == b"/v1/chat/completions")
        except BadRequest as exc:
            self.write(_error(400, str(exc)))
            return
        self._server.served += 1
        chunk_id = f"{'chatcmpl' if plan.chat else 'cmpl'}-bench{self._server.served}"
        self._stream = _Stream(self, plan, ChunkEncoder(plan, chunk_id, int(time.time())))
        self._stream.start()

    def _plan(self, chat: bool) -> ReplyPlan:
        try:
            body = orjson.loads(b"".join(self._body))
        except orjson.JSONDecodeError:
            raise BadRequest("request body is not JSON") from None
        plan = plan_reply(body, chat, None)
        scripted = [n for n, unset in _UNSUPPORTED.items() if getattr(plan.scenario, n) != unset]
        if scripted:
            raise BadRequest(f"the benchmark upstream serves only tokens, rate and stamp, "
                             f"not {', '.join(scripted)} (use sserelay.testing.fake_upstream)")
        if not plan.stream:
            raise BadRequest("the benchmark upstream serves streams only (stream: true)")
        return plan

    # for _Stream
    def write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def stream_ended(self) -> None:
        self._stream = None

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class StampedUpstream:
    """The server: counts the streams it started (for the chunk ids) and its connections.

    Its garbage collector runs only when no connection is open, between the benchmark's
    loads: a full collection mid-load stalled all 500 streams' tokens for ~30 ms at once,
    which the load generator read as latency of whatever relay was under test."""

    def __init__(self) -> None:
        self.served = 0
        self.connections = 0

    def connection_closed(self) -> None:
        self.connections -= 1
        if self.connections == 0:
            gc.collect()

    async def serve(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(self), host, port, backlog=4096)
        gc.collect()
        gc.freeze()
        gc.disable()
        async with server:
            await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sserelay.bench.stamped_upstream",
        description="The benchmark's upstream: paced, stamped OpenAI streams, cheaply.",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    # As the relay does: 500 streams starting together must not wait for the table to grow
    # (this process has libuv's threads too).
    reserve_descriptors()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(StampedUpstream().serve(args.host, args.port))


if __name__ == "__main__":
    main()
