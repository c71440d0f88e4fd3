"""The cyclic garbage collector under `sserelay serve`: when it runs, and over what.

Everything made while starting (modules, the app, its routes) lives as long as the process:
`settle` freezes it, out of every later scan, and has the young generation collected every
10,000 allocations rather than 700, so that a request's short-lived objects die before they
are scanned and promoted (docs/decisions.md, "The garbage collector": relay CPU for 1,500
two-token streams 927 -> 593 µs per chunk).

The older generation is collected on a timer, not by count. CPython collects generation 1
after every tenth young collection, and young collections come when the number of live
objects grows: exactly while streams are being added. Generation 1 then holds every open
stream's objects (~200 each), none of them garbage, and scanning them stops the event loop
for every stream at once: 50 ms at 500 open streams, which delayed ~1,000 of a run's 50,000
chunks, more than the 1% that p99 looks at (docs/decisions.md, "The older generation on a
timer"). `OlderCollections` runs that collection at most once every `interval` seconds, and
only if a young collection has run since the last one. The pause is as long when it comes,
but it comes once a half-minute, not during every surge of new streams; what it frees
(cycles that outlived one young collection: ~9 objects a stream) waits that much longer.

The library, the Flask/Django integrations and tests leave the collector alone: the process
is theirs.
"""

from __future__ import annotations

import asyncio
import gc

__all__ = ["OLDER_INTERVAL", "YOUNG_THRESHOLD", "OlderCollections", "settle"]

YOUNG_THRESHOLD = 10_000
OLDER_INTERVAL = 30.0
# Generation 1's threshold counts young collections: never reached (gc takes a C int).
_BY_TIMER = 2**31 - 1


def settle() -> None:
    """Freeze what start-up made; young collections every `YOUNG_THRESHOLD` allocations,
    the older generation left to `OlderCollections`. Generation 2 keeps CPython's rule (after
    ten generation-1 collections, once it has grown by a quarter)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, _BY_TIMER, 10)


class OlderCollections:
    """Collects generation 1 every `interval` seconds on the running loop, when a young
    collection has promoted anything into it since the last time."""

    def __init__(self, interval: float = OLDER_INTERVAL) -> None:
        self.interval = interval
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.stop()
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._due)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        if gc.get_count()[1] > 0:  # young collections since generation 1's last one
            gc.collect(1)
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._due)
