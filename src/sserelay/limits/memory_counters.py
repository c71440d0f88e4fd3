"""Counters in this process's memory: the default, right for a single instance."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .counters import Counters, Take, wait_for_room

__all__ = ["MemoryCounters"]

# Windows of names not seen for a while are dropped once there are this many, so a stream of
# distinct clients (peer addresses) cannot grow the table without bound.
_PRUNE_AT = 4096


@dataclass(slots=True)
class _Window:
    index: int
    curr: int = 0
    prev: int = 0


class MemoryCounters(Counters):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._slots: dict[str, set[str]] = {}

    def _window(self, name: str, window: float) -> tuple[_Window, float]:
        position = self._clock() / window
        index = math.floor(position)
        counts = self._windows.get(name)
        if counts is None:
            if len(self._windows) >= _PRUNE_AT:
                self._prune(index)
            counts = self._windows[name] = _Window(index)
        elif counts.index != index:
            # One boundary crossed: the current window becomes the previous; more: both empty.
            counts.prev = counts.curr if counts.index == index - 1 else 0
            counts.curr, counts.index = 0, index
        return counts, position - index

    def _prune(self, index: int) -> None:
        for name in [n for n, c in self._windows.items() if c.index < index - 1]:
            del self._windows[name]

    async def take(self, takes: Sequence[Take], window: float) -> list[float]:
        waits, windows = [], []
        for take in takes:
            counts, fraction = self._window(take.name, window)
            windows.append(counts)
            wait = wait_for_room(counts.prev, counts.curr, fraction, take.amount, take.limit)
            waits.append(wait * window)
        if not any(waits):
            for take, counts in zip(takes, windows, strict=True):
                counts.curr += take.amount
        return waits

    async def add(self, name: str, amount: int, window: float) -> None:
        counts, _ = self._window(name, window)
        counts.curr += amount

    async def acquire(self, name: str, limit: int, holder: str) -> bool:
        holders = self._slots.setdefault(name, set())
        if holder in holders:
            return True
        if len(holders) >= limit:
            return False
        holders.add(holder)
        return True

    async def release(self, name: str, holder: str) -> None:
        holders = self._slots.get(name)
        if holders is not None:
            holders.discard(holder)
            if not holders:
                del self._slots[name]

    async def aclose(self) -> None:
        self._slots.clear()

