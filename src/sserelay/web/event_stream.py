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
    ) -> None:
        self.status_code = 200
        self.background = None
        self.chunks = body
        self.on_close = on_close
        self.heartbeat = heartbeat
        self._sent = 0
        self.raw_headers = list(SSE_HEADERS)
        if headers:
            self.raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            pump = asyncio.ensure_future(self._pump(send))
            watch = asyncio.ensure_future(_wait_for_disconnect(receive))
            helpers = [watch]
            if self.heartbeat:
                helpers.append(asyncio.ensure_future(self._beat(send, self.heartbeat)))
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
            self._sent += 1
            await send(message)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _beat(self, send: Send, interval: float) -> None:
        # A comment only when nothing else was sent for a whole interval: the hot path pays
        # one integer increment per chunk, not a timer.
        seen = -1
        while True:
            await asyncio.sleep(interval)
            if self._sent == seen:
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
            seen = self._sent


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
