"""New generations start one per event-loop iteration, behind the streams already flowing.

A burst of new streams is CPU the event loop runs in arrival order. Each start (the guard's
checks, the endpoint, the upstream request, the generation's first step) is a few hundred
microseconds of Python, and whatever became due behind a batch of them waits for all of
them: the chunks of running streams, and the GET with which a client follows a stream it
has just created. With a 500-stream burst's connections accepted many at a time
(web/server.py), that GET still waited 85-103 ms at the 99th percentile behind the other
streams' POSTs, while its own stream's tokens piled up in the log (docs/decisions.md,
"Accepting a burst, and starts waiting their turn").

`StartGate.turn()` lets one start through per loop iteration; the others wait in arrival
order (nothing is refused, and nothing waits when no start is waiting). Everything that is
not a start (chunks, follows, resumes, cancels) runs between two starts. The total CPU of
a burst is the same; what changes is who waits for it: the requests that start something
new, in their time to first token, instead of the streams already under way.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["StartGate"]


class StartGate:
    """At most one start per event-loop iteration; the rest wait in arrival order."""

    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._passed = False  # a start went through in this iteration

    async def turn(self) -> None:
        """Return when this start may run: at once if none has run in this iteration and
        none is waiting, else after those ahead of it, one per iteration."""
        if not self._passed and not self._waiting:
            self._pass()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        await waiter  # a cancelled waiter is skipped by `_next`

    def _pass(self) -> None:
        self._passed = True
        # Scheduled now, run in the next iteration: callbacks made ready while an iteration
        # runs wait for the next one, after whatever became due in between.
        asyncio.get_running_loop().call_soon(self._next)

    def _next(self) -> None:
        self._passed = False
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._pass()
                return
