"""An ASGI response that writes an event stream and stops its producer when the client leaves.

Starlette's StreamingResponse would also do, but it checks for disconnects only between
chunks and adds a layer of wrapping per chunk. Here the producer and a disconnect watcher run
side by side (as sse-starlette races them), so an upstream that is slow to produce the next
token is still closed the moment the browser goes away: tokens nobody reads are not paid for.

A producer that can push (`push=`) is handed a `Channel` that writes to the client's socket
in the same call: under uvicorn's httptools protocol, the connection's own transport, framed
as uvicorn frames chunks, with uvicorn's flow control (docs/decisions.md, "The hot path: body
bytes pushed, not pulled"). Under any other server the pulled `body` is used.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from sserelay.speedups import ChunkWriter
from sserelay.web.keepalive import Keepalive, sweeper

# Where the app puts the server's own `send` (web/app.py, SserelayApp.__call__).
RAW_SEND_KEY = "sserelay.raw_send"
# Where a route whose streams are cut at shutdown puts what cuts them (web/guard.py).
CUT_KEY = "sserelay.cuts"


class Cuts(Protocol):
    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when the streams are cut; returns the unsubscribe function."""

SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


class Channel(Protocol):
    """Where a pushing producer writes the client's bytes, synchronously."""

    sent: int  # writes so far

    def write(self, data: bytes) -> bool:
        """Send `data` now; False when the client is not keeping up (wait for `drain`) or
        has gone (`gone`)."""

    def write_chunk(self, chunk: bytes) -> bool:
        """`write`, for bytes already framed as one HTTP chunk (`speedups.http_chunk`)."""

    @property
    def gone(self) -> bool: ...

    @property
    def blocked(self) -> bool: ...

    async def drain(self) -> None:
        """Wait until the client's socket takes writes again."""


Pusher = Callable[[Channel], Awaitable[None]]
_UVICORN_CYCLE = "uvicorn.protocols.http.httptools_impl"


# The attribute of uvicorn's request cycle holding a callback for when its client goes, and
# the class attribute saying a protocol calls it (web/server.py, HeaderDeadlineProtocol).
ON_GONE_ATTR = "sserelay_on_gone"
ANNOUNCES_GONE_ATTR = "announces_gone"


class _TransportChannel(ChunkWriter):
    """Writes straight to uvicorn's transport, as `RequestResponseCycle.send` would for a
    chunked body (the response start and the final chunk still go through `send`).
    `write` and `write_chunk` are ChunkWriter's, in C: no Python frame per chunk."""

    __slots__ = ()

    @property
    def gone(self) -> bool:
        return bool(self.cycle.disconnected)

    @property
    def blocked(self) -> bool:
        return bool(self.flow.write_paused)

    async def drain(self) -> None:
        await self.flow.drain()

    @property
    def announces_gone(self) -> bool:
        """Whether this server's protocol calls `when_gone`'s callback on a disconnect (if
        not, watch `receive()` for it instead)."""
        protocol = getattr(self.cycle.on_response, "__self__", None)
        return bool(getattr(protocol, ANNOUNCES_GONE_ATTR, False))

    def when_gone(self, callback: Callable[[], None] | None) -> None:
        """Have `callback` called when the client disconnects (None: no longer)."""
        setattr(self.cycle, ON_GONE_ATTR, callback)


def transport_channel(scope: Scope, send: Send) -> _TransportChannel | None:
    """A direct channel to the client, when the server is uvicorn's httptools protocol in
    chunked mode; None elsewhere (other servers, HTTP/1.0 clients, HEAD)."""
    cycle = getattr(send, "__self__", None)
    if (
        cycle is None
        or type(cycle).__module__ != _UVICORN_CYCLE
        or scope.get("method") == "HEAD"
        or getattr(cycle, "chunked_encoding", None) is not True
        or not getattr(cycle, "response_started", False)
        or getattr(cycle, "response_complete", True)
    ):
        return None
    return _TransportChannel(cycle)


class _PushRun:
    """What can end one pushed response early, as one object: the client leaving (the
    protocol's callback), the shutdown's cut, and the sweeper's heartbeat and slow-client
    check. Each cancels the push, once, while it runs. Closures for the same were three
    functions, their cells and a list per stream, each scanned by every garbage collection
    for as long as the stream lasts."""

    __slots__ = ("channel", "keepalive", "running", "stopped", "task")

    def __init__(
        self, task: asyncio.Task[Any], channel: _TransportChannel, keepalive: Keepalive | None
    ) -> None:
        self.task = task
        self.channel = channel
        self.keepalive = keepalive
        self.running = True
        self.stopped = False

    def stop(self) -> None:
        if self.running and not self.stopped:
            self.stopped = True
            self.task.cancel()

    def check(self, now: float) -> None:
        keepalive, channel = self.keepalive, self.channel
        assert keepalive is not None
        action = keepalive.check(now, channel.sent, channel.blocked)
        if action == "ping":
            channel.write(b": ping\n\n")
            keepalive.pinged(now, channel.sent)
        elif action == "drop":
            self.stop()


class EventStreamResponse(Response):
    """Send `body`'s byte chunks as they come; on disconnect, cancel it and run `on_close`.

    A `Response` subclass only so endpoints and middleware see the familiar type; it
    writes everything itself and never calls the base class's rendering.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        headers: dict[str, str] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
        heartbeat: float | None = None,
        slow_client_timeout: float | None = None,
        push: Pusher | None = None,
    ) -> None:
        self.status_code = 200
        self.push = push
        self._channel: _TransportChannel | None = None
        self.background = None
        self.chunks = body
        self.on_close = on_close
        self.heartbeat = heartbeat
        self.slow_client_timeout = slow_client_timeout
        self._sent = 0
        self._in_send = False
        self.raw_headers = list(SSE_HEADERS)
        if headers:
            self.raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            # The start went through the middleware (CORS adds its headers there); the body
            # goes straight to the server. Every middleware wrapper only looks at the start,
            # and skipping three of them per chunk was ~7% of the relay's CPU (profile in
            # docs/decisions.md, "The hot path").
            send = scope.get(RAW_SEND_KEY, send)
            if self.push is not None:
                self._channel = transport_channel(scope, send)
            if self._channel is not None and self._channel.announces_gone:
                await self._run_pushed(self._channel, send, scope.get(CUT_KEY))
            else:
                await self._run_tasks(receive, send)
        finally:
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            if self.on_close is not None:
                await self.on_close()

    async def _run_pushed(
        self, channel: _TransportChannel, send: Send, cut: Cuts | None
    ) -> None:
        """Push in this task: no task of its own, none to watch for the client leaving (the
        protocol says so) and the shared sweeper for heartbeats. Whatever ends the stream
        early (the client left, it stopped reading, shutdown) cancels this task's push."""
        assert self.push is not None
        task = asyncio.current_task()
        assert task is not None
        keepalive = None
        if self.heartbeat or self.slow_client_timeout:
            keepalive = Keepalive(self.heartbeat, self.slow_client_timeout,
                                  asyncio.get_running_loop().time())
        run = _PushRun(task, channel, keepalive)
        stop = run.stop  # one bound method for all three subscriptions
        channel.when_gone(stop)
        unsubscribe = cut.subscribe(stop) if cut is not None else None
        unsweep = sweeper().add(run.check, keepalive.tick) if keepalive is not None else None
        try:
            if channel.gone:
                return
            await self.push(channel)
            run.running = False
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if run.stopped and task.uncancel() == 0:
                return  # ended early on purpose: no end marker, the client may resume
            raise
        finally:
            run.running = False
            channel.when_gone(None)
            if unsubscribe is not None:
                unsubscribe()
            if unsweep is not None:
                unsweep()

    async def _run_tasks(self, receive: Receive, send: Send) -> None:
        """The producer (pushed or pulled), a disconnect watcher and the heartbeat monitor
        as tasks: for servers whose protocol does not announce a disconnect."""
        if self._channel is not None:
            pump = asyncio.ensure_future(self._run_push(self._channel, send))
        else:
            pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_wait_for_disconnect(receive))
        helpers = [watch]
        if self.heartbeat or self.slow_client_timeout:
            helpers.append(asyncio.ensure_future(self._monitor(send, pump)))
        try:
            await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, *helpers):
                task.cancel()
            for task in (pump, *helpers):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]

    async def _pump(self, send: Send) -> None:
        message: Message = {"type": "http.response.body", "body": b"", "more_body": True}
        async for chunk in self.chunks:
            # One dict reused for every chunk: the server reads it synchronously in send().
            message["body"] = chunk
            self._in_send = True
            await send(message)
            self._in_send = False
            self._sent += 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _run_push(self, channel: _TransportChannel, send: Send) -> None:
        assert self.push is not None
        await self.push(channel)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _progress(self) -> tuple[int, bool]:
        """Writes so far, and whether a write is waiting for the client to read."""
        channel = self._channel
        if channel is not None:
            return channel.sent, channel.blocked
        return self._sent, self._in_send

    async def _monitor(self, send: Send, pump: asyncio.Future[None]) -> None:
        """Heartbeats, and dropping a client that stopped reading (`Keepalive`), as a task
        of this response's own."""
        loop = asyncio.get_running_loop()
        keepalive = Keepalive(self.heartbeat, self.slow_client_timeout, loop.time())
        while True:
            await asyncio.sleep(keepalive.tick)
            now = loop.time()
            action = keepalive.check(now, *self._progress())
            if action == "drop":
                pump.cancel()
                return
            if action == "ping":
                if self._channel is not None:
                    self._channel.write(b": ping\n\n")
                else:
                    await send(
                        {"type": "http.response.body", "body": b": ping\n\n", "more_body": True}
                    )
                keepalive.pinged(now, self._progress()[0])


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
