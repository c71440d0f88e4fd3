"""An ASGI response that writes an event stream and stops its producer when the client leaves.

Starlette's StreamingResponse would also do, but it checks for disconnects only between
chunks and adds a layer of wrapping per chunk. Here the producer and a disconnect watcher run
side by side (as sse-starlette races them), so an upstream that is slow to produce the next
token is still closed the moment the browser goes away: tokens nobody reads are not paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

# Where the app puts the server's own `send` (web/app.py, SserelayApp.__call__).
RAW_SEND_KEY = "sserelay.raw_send"

SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


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
    ) -> None:
        self.status_code = 200
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
        finally:
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            if self.on_close is not None:
                await self.on_close()

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

    async def _monitor(self, send: Send, pump: asyncio.Future[None]) -> None:
        """Heartbeats, and dropping a client that stopped reading.

        A comment is sent only when nothing else was sent for a whole interval. A client
        whose socket has not accepted a write for `slow_client_timeout` seconds is dropped:
        the stream lives on in the log, so it can resume with Last-Event-ID, while the
        upstream and the other followers never wait for it. The hot path pays two flag
        stores and an increment per chunk, not a timer.
        """
        loop = asyncio.get_running_loop()
        heartbeat, slow = self.heartbeat, self.slow_client_timeout
        tick = min(t for t in (heartbeat, slow) if t) / 2
        seen, quiet_since = self._sent, loop.time()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            if self._sent != seen:
                seen, quiet_since = self._sent, now
                continue
            if self._in_send:
                if slow and now - quiet_since >= slow:
                    pump.cancel()
                    return
            elif heartbeat and now - quiet_since >= heartbeat:
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                quiet_since = now


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
