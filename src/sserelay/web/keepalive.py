"""Heartbeats and dropping clients that stopped reading, for every open event stream.

Each response keeps a `Keepalive`: when it last saw progress, and what to do when it has
seen none for a while. A comment (`: ping`) goes out only when nothing else was sent for a
whole heartbeat interval; a client whose socket has not taken a write for
`slow_client_timeout` seconds is dropped (the stream lives on in the log, so it can resume
with Last-Event-ID, while the upstream and the other followers never wait for it). The hot
path pays nothing: the check compares write counters the response keeps anyway.

Pushed responses share one `Sweeper` per event loop, a single task that checks them all,
instead of a sleeping task each (a task per stream was ~3% of a streaming request's CPU and
~2 KiB of its memory, docs/decisions.md "Per-request work").
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable
from typing import Literal

__all__ = ["Keepalive", "Sweeper", "sweeper"]

Action = Literal["ping", "drop"] | None


class Keepalive:
    """One response's quiet time, and what it calls for."""

    __slots__ = ("_quiet_since", "_seen", "heartbeat", "slow", "tick")

    def __init__(self, heartbeat: float | None, slow: float | None, now: float) -> None:
        self.heartbeat, self.slow = heartbeat or None, slow or None
        # Checked twice per interval: a heartbeat goes out 1-1.5 intervals after the last write.
        self.tick = min(t for t in (self.heartbeat, self.slow, math.inf) if t) / 2
        self._seen, self._quiet_since = 0, now

    def check(self, now: float, sent: int, blocked: bool) -> Action:
        """What to do now, given the writes so far and whether one waits for the client."""
        if sent != self._seen:
            self._seen, self._quiet_since = sent, now
            return None
        quiet = now - self._quiet_since
        if blocked:
            return "drop" if self.slow and quiet >= self.slow else None
        if self.heartbeat and quiet >= self.heartbeat:
            return "ping"
        return None

    def pinged(self, now: float, sent: int) -> None:
        self._seen, self._quiet_since = sent, now


Check = Callable[[float], None]


class Sweeper:
    """Calls each registered check periodically, at the shortest tick registered."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._checks: dict[Check, float] = {}
        self._tick = math.inf
        self._task: asyncio.Task[None] | None = None

    def add(self, check: Check, tick: float) -> Callable[[], None]:
        """Check `check(now)` every `tick` seconds or sooner, until the returned function
        is called."""
        self._checks[check] = tick
        if tick < self._tick:
            self._tick = tick
            if self._task is not None:
                self._task.cancel()  # restarted below, at the shorter tick
            self._task = None
        if self._task is None:
            self._task = self._loop.create_task(self._run())
        return functools.partial(self._discard, check)  # fewer objects than a closure

    def _discard(self, check: Check) -> None:
        self._checks.pop(check, None)
        if not self._checks and self._task is not None:
            self._task.cancel()
            self._task = None
            self._tick = math.inf

    async def _run(self) -> None:
        while self._checks:
            await asyncio.sleep(self._tick)
            now = self._loop.time()
            for check in list(self._checks):
                check(now)


_sweepers: dict[asyncio.AbstractEventLoop, Sweeper] = {}


def sweeper() -> Sweeper:
    """This event loop's sweeper."""
    loop = asyncio.get_running_loop()
    found = _sweepers.get(loop)
    if found is None:
        for old in [old for old in _sweepers if old.is_closed()]:
            del _sweepers[old]
        found = _sweepers[loop] = Sweeper(loop)
    return found
