"""The counting behind the limits: sliding rate windows and concurrency slots.

Two kinds of count, behind one interface so that the limiter does not care where they live:

- A *window* counts an amount (requests, tokens) per `window` seconds with the sliding-window
  estimate: the previous fixed window's count, weighted by how much of it still overlaps the
  last `window` seconds, plus the current one's. Unlike plain fixed windows it does not let a
  client spend twice its limit across a window boundary, and it needs two integers per
  window, not a log of every request.
- A *slot* is one of `limit` concurrent holders (streams in flight). A holder that vanishes
  without releasing (its instance died) is forgotten after a lease, so a crash cannot leak
  capacity for good.

Implementations: `MemoryCounters` (one process, the default) and `RedisCounters` (shared by
every instance using one Redis); both pass the same test suite (tests/limits).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = ["NEVER", "Counters", "Take", "wait_for_room"]

NEVER = math.inf
"""The wait for an amount larger than the limit itself: no wait makes it fit."""


@dataclass(frozen=True, slots=True)
class Take:
    """Add `amount` to the window `name` if it stays within `limit`."""

    name: str
    amount: int
    limit: int


def wait_for_room(prev: float, curr: float, fraction: float, amount: int, limit: int) -> float:
    """How many windows from now the sliding estimate has room for `amount` more (0: now).

    `prev` and `curr` are the previous and current fixed windows' counts, `fraction` how far
    into the current window we are (0 <= fraction < 1). The estimate is
    ``prev * (1 - fraction) + curr``; it falls only as the previous window slides out, and
    the current one becomes the previous at the next boundary. Assumes nothing else is added
    meanwhile, so a client told to wait this long and coming back is admitted.
    """
    room = limit - amount
    if room < 0:
        return NEVER
    if prev * (1 - fraction) + curr <= room:
        return 0.0
    if curr <= room:
        # Within this window, once enough of the previous one has slid out.
        return (1 - (room - curr) / prev) - fraction
    # Only after the boundary, once enough of this window (then the previous) slides out.
    return (1 - fraction) + (1 - room / curr)


class Counters(abc.ABC):
    """Rate windows and concurrency slots, by name. Names are the limiter's business."""

    @abc.abstractmethod
    async def take(self, takes: Sequence[Take], window: float) -> list[float]:
        """All of `takes` or none. Returns, per take, the seconds until its window has room
        for it (0.0: now; `NEVER`: its amount exceeds the limit alone); only when all are
        0.0 was anything added."""

    @abc.abstractmethod
    async def add(self, name: str, amount: int, window: float) -> None:
        """Count `amount` in the window `name` whatever its limit (usage known afterwards)."""

    @abc.abstractmethod
    async def acquire(self, name: str, limit: int, holder: str) -> bool:
        """Take one of `limit` slots of `name` for `holder`; False if all are taken. Taking
        again for a holder that has one is a no-op that returns True."""

    @abc.abstractmethod
    async def release(self, name: str, holder: str) -> None:
        """Give `holder`'s slot of `name` back (nothing if it has none)."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release resources; slots still held are given back where that is possible."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
