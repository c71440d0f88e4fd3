"""Limits on an upstream stream (first token, idle, total) without a timer per chunk.

A timeout per read (aiohttp's `sock_read`, which sserelay used) re-arms a timer on every
read: ~5 % of the gateway's CPU per relayed chunk in the profile (docs/decisions.md, "The
hot path"). One periodic check per stream does the same job; the hot path only increments
a counter.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sserelay.upstream import failures

__all__ = ["Timeouts", "Watchdog"]


class Closable(Protocol):
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Limits on an upstream stream, in seconds; each ends the stream with a typed ending."""

    connect: float = 10.0
    first_token: float = 60.0  # from the request to the first event
    idle: float = 60.0  # between two reads once the stream has started
    total: float = 600.0  # the whole answer

    @property
    def tick(self) -> float:
        # The watchdog's period: a quarter of the shortest limit, so a limit is enforced
        # within 25 % of its value without a timer per chunk.
        shortest = min(self.first_token, self.idle, self.total)
        return max(0.05, shortest / 4) if math.isfinite(shortest) else math.inf


class Watchdog:
    """Enforces the first-token, idle and total limits with one periodic timer per stream.

    The hot path only increments `reads` (or the count `progress()` returns, kept by whoever
    receives the bytes); the timer compares it with what it saw last time. On expiry it
    closes the response, which ends the pending read.
    """

    def __init__(
        self, response: Closable, timeouts: Timeouts, progress: Callable[[], int] | None = None
    ) -> None:
        self.reads = 0
        self._progress = progress
        self.expired: failures.Limit | None = None
        self._response = response
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self._started = self._last_progress = self._loop.time()
        self._seen = 0
        self._handle: asyncio.TimerHandle | None = None
        if math.isfinite(timeouts.tick):
            self._handle = self._loop.call_later(timeouts.tick, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        limits = self._timeouts
        reads = self.reads if self._progress is None else self._progress()
        if reads != self._seen:
            self._seen, self._last_progress = reads, now
        if now - self._started > limits.total:
            self.expired = "total"
        elif reads == 0 and now - self._started > limits.first_token:
            self.expired = "first_token"
        elif reads and now - self._last_progress > limits.idle:
            self.expired = "idle"
        if self.expired:
            self._response.close()
        else:
            self._handle = self._loop.call_later(limits.tick, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
