"""Moving one stream from an upstream reply to the client, and what happens when it ends.

The bytes are decided by a sans-IO `StreamFilter` (pass-through or translation); this module
only reads, feeds and yields. When the stream ends its usage is recorded. When the client
leaves first, the configured policy decides: "drain" keeps reading the upstream in the
background, without sending, until its usage report arrives; "cancel" closes the upstream
at once and records the chunks relayed as an estimate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from sserelay.gateway.config import Abandoned
from sserelay.keys.ledger import Usage
from sserelay.observability.context import StreamMarks, clock, current_request
from sserelay.providers.base import ProviderReply
from sserelay.providers.errors import ProviderError
from sserelay.speedups import CountedAppend, PlainPass
from sserelay.upstream.errors import Ending
from sserelay.web.event_stream import Channel

__all__ = ["RelayedStream", "StreamFilter", "read_first"]

log = logging.getLogger("sserelay.gateway")
_TAIL_READS = 4

Finish = Callable[["StreamFilter", Ending], None]


class StreamFilter(Protocol):
    """Upstream body bytes in, client bytes out (sans-IO); see openai_passthrough.py."""

    done: bool
    error: ProviderError | None
    usage: Usage | None
    events: int
    passes_plain: bool
    """While true, a read that is one plain event (`speedups.plain_event`) would come out
    of `feed` unchanged: a pushing relay sends it as it is, adding one to `events`, without
    the call (see OpenAIStreamFilter)."""

    def feed(self, chunk: bytes) -> bytes: ...
    def end(self) -> bytes: ...
    def fail(self, error: ProviderError) -> bytes: ...


async def _step(reply: ProviderReply, stream: StreamFilter) -> bytes:
    """Read once and feed the filter; the filter's `done` says when to stop."""
    try:
        chunk = await reply.read_chunk()
    except ProviderError as error:
        return stream.fail(error)
    return stream.feed(chunk) if chunk else stream.end()


async def read_first(reply: ProviderReply, stream: StreamFilter) -> bytes:
    """Read until the filter has something for the client (or the stream is over)."""
    out = b""
    while not out and not stream.done:
        out = await _step(reply, stream)
    return out


async def _resume_after(channel: Channel, reply: ProviderReply, waiting: list[Any]) -> None:
    try:
        await channel.drain()
    finally:
        waiting.clear()
    reply.resume()


class RelayedStream:
    """The rest of one stream after its first bytes; `body()` for the response, `close()`
    for its `on_close`. `finish(filter, ending)` records the usage, exactly once."""

    def __init__(
        self,
        reply: ProviderReply,
        stream: StreamFilter,
        first: bytes,
        *,
        finish: Finish,
        abandoned: Abandoned,
        drain_timeout: float,
        background: set[asyncio.Task[None]],
    ) -> None:
        self.reply = reply
        self.stream = stream
        self.first = first
        self._finish = finish
        self._abandoned = abandoned
        self._drain_timeout = drain_timeout
        self._background = background
        self._complete = False
        # Chunks, bytes and sampled times, for /metrics and the log (observability).
        self._marks = StreamMarks()
        self._ctx = current_request()
        if self._ctx is not None:
            self._ctx.streaming = True
            self._ctx.telemetry.stream_started(self._ctx.api or "gateway")

    async def body(self) -> AsyncIterator[bytes]:
        stamps, chunks, size = self._marks.marks, 0, 0
        try:
            if self.first:
                yield self.first
                chunks, size = 1, len(self.first)
                stamps.append(clock())
            reply, stream = self.reply, self.stream
            read, feed = reply.read_chunk, stream.feed  # the per-token loop: no lookups
            while not stream.done:
                try:
                    chunk = await read()
                except ProviderError as error:
                    yield stream.fail(error)
                    break
                out = feed(chunk) if chunk else stream.end()
                if out:
                    yield out
                    chunks += 1
                    size += len(out)
                    if chunks & 7 < 2:  # chunk 1, then pairs 8-9, 16-17... (StreamMarks)
                        stamps.append(clock())
            self._complete = True
            if stream.error is None:
                # Read the few bytes after [DONE] (the chunked terminator) so the connection
                # goes back to the pool instead of being closed.
                for _ in range(_TAIL_READS):
                    with contextlib.suppress(ProviderError):
                        if not await reply.read_chunk():
                            break
        finally:
            self._marks.chunks, self._marks.size = chunks, size

    async def push(self, channel: Channel) -> None:
        """The same as `body()`, pushed: each upstream read is fed to the filter and written
        to the client in the call that read it from the socket, without a task switch.

        When the client's socket stops taking writes the upstream is paused until it
        drains; the slow-client monitor decides when a client that never drains is dropped.
        """
        marks = self._marks
        reply, stream = self.reply, self.stream
        feed = stream.feed
        # The write, counted for the marks (chunks, bytes, sampled times) in the same C call.
        send = CountedAppend(channel.write, (), clock, marks.marks)
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        waiting: list[asyncio.Task[None]] = []

        def blocked() -> None:
            # The client's socket took the bytes but wants no more for now (or it is gone).
            if not channel.gone and not waiting:
                reply.pause()
                waiting.append(asyncio.ensure_future(_resume_after(channel, reply, waiting)))

        def out(data: bytes) -> None:
            if not send(data):
                blocked()

        def fed(chunk: bytes) -> None:
            data = feed(chunk)
            if data:
                out(data)
            if stream.done and not ended.done():
                ended.set_result(None)

        # Per read: the filter's own first check, without its call (passes_plain, then
        # plain_event), and the counted write, in one C call; any other read is `fed`
        # (docs/decisions.md, "The chunk path, third round").
        on_data = PlainPass(stream, send, blocked, fed)

        def on_end(error: ProviderError | None) -> None:
            data = stream.fail(error) if error is not None else stream.end()
            if data:
                out(data)
            if not ended.done():
                ended.set_result(None)

        try:
            if self.first:
                out(self.first)
            if stream.done:
                return
            reply.attach(on_data, on_end)
            await ended
            self._complete = True
        finally:
            reply.detach()
            marks.chunks, marks.size = send.chunks, send.size
            for task in waiting:
                task.cancel()

    async def close(self) -> None:
        if self._ctx is not None:
            self._ctx.stream = self._marks
        if self._complete or self.stream.done:
            if self.stream.error is None:
                self.reply.release()  # [DONE] seen: the connection may go back to the pool
            else:
                self.reply.close()
            self._finish(self.stream, "error" if self.stream.error else "done")
        elif self._abandoned == "drain":
            task = asyncio.create_task(self._drain())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            self.reply.close()
            self._finish(self.stream, "aborted")

    async def _drain(self) -> None:
        """The client left: read on, sending nothing, until the upstream's usage arrives."""
        try:
            async with asyncio.timeout(self._drain_timeout):
                while not self.stream.done:
                    await _step(self.reply, self.stream)
        except TimeoutError:
            log.warning("gave up draining an abandoned stream after %.0f s", self._drain_timeout)
        finally:
            self.reply.close()
            self._finish(self.stream, "aborted")
