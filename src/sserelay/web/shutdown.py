"""Graceful shutdown: finish what runs within a grace period, then hand the rest over.

When the server is told to stop (SIGTERM; `web/server.py` calls `begin()`), it stops accepting
connections and sserelay refuses new streams (503 with Retry-After), while the running ones
go on for up to `grace` seconds. When the grace period is over, or as soon as nothing runs
any more, the rest is *cut*:

- followers of the stream log are disconnected with no end marker, so they reconnect with
  `Last-Event-ID`: to another instance, which continues from a shared (Redis) log;
- generations still running end with the typed `truncated` ending ("the sserelay instance
  producing this answer stopped"), which is what those followers then read, and their
  upstream requests are closed;
- gateway streams, which have no log to resume from, end with their typed error and
  `[DONE]`: their upstream connections are closed, which ends them (and their cost) at once.

Followers are cut first, so that a follower never reads the ending meant for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive

from sserelay.relay.generation import Generations

__all__ = ["Shutdown"]

log = logging.getLogger("sserelay.shutdown")
_DISCONNECT: Message = {"type": "http.disconnect"}
_FOLLOWERS_WAIT_STEPS = 100  # of 10 ms


class Shutdown:
    def __init__(
        self,
        grace: float,
        generations: Generations,
        *,
        close_upstreams: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.grace = grace
        self.draining = False
        """New streams are refused; set by `begin()`."""
        self._generations = generations
        self._close_upstreams = close_upstreams
        self._cut = asyncio.Event()
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._cutting: asyncio.Task[None] | None = None
        self._subscribers: set[Callable[[], None]] = set()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def begin(self) -> None:
        """Stop taking new streams; cut what still runs `grace` seconds from now."""
        if self.draining:
            return
        self.draining = True
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self.grace
        self._timer = loop.call_later(self.grace, self.cut)
        log.warning(
            "shutting down: new streams are refused; running ones have %g s to finish", self.grace
        )

    def cut(self) -> None:
        """End the grace period now (idempotent)."""
        if self._cut.is_set():
            return
        self.draining = True
        if self._timer is not None:
            self._timer.cancel()
        # Before the followers go: their leaving must not cancel the generations, which
        # would record "cancelled" for everyone instead of "truncated".
        self._generations.keep_without_followers()
        self._cut.set()
        subscribers, self._subscribers = self._subscribers, set()
        for callback in subscribers:
            callback()
        self._cutting = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        # The followers go first (their responses stop at the next loop turns), so that none
        # of them reads the ending written next; bounded, in case one is stuck in a write.
        for _ in range(_FOLLOWERS_WAIT_STEPS):
            if not self._generations.followed():
                break
            await asyncio.sleep(0.01)
        await self._generations.end_truncated()
        if self._close_upstreams is not None:
            try:
                await self._close_upstreams()
            except Exception:
                log.exception("closing the upstream connections failed")

    async def finish(self) -> None:
        """The server's last step (lifespan shutdown): wait for running generations until
        the grace period is over, then cut and end what is left as `truncated`."""
        self.begin()
        assert self._deadline is not None
        remaining = self._deadline - asyncio.get_running_loop().time()
        if remaining > 0 and not self._cut.is_set():
            await self._generations.wait_finished(remaining)
        self.cut()
        if self._cutting is not None:
            await self._cutting

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when the grace period is over (at once if it is); returns the
        function that unsubscribes. Pushed followers use this instead of `until_cut`."""
        if self._cut.is_set():
            callback()
            return _nothing
        self._subscribers.add(callback)
        return functools.partial(self._subscribers.discard, callback)

    def until_cut(self, receive: Receive) -> Receive:
        """`receive`, except that it reports a disconnect once the grace period is over: the
        response then ends without its end marker (the client will resume elsewhere)."""
        cut = self._cut

        async def receive_until_cut() -> Message:
            if cut.is_set():
                return _DISCONNECT
            message = asyncio.ensure_future(receive())
            stop = asyncio.ensure_future(cut.wait())
            try:
                await asyncio.wait((message, stop), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                if not message.done():
                    message.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await message
            if message.cancelled():
                return _DISCONNECT
            return message.result()

        return receive_until_cut


def _nothing() -> None:
    pass
