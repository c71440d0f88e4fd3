"""`deadline(seconds)`: `asyncio.timeout(seconds)` for the per-request path, for less CPU.

Python 3.11's `asyncio.timeout` is pure Python (a state enum, two event-loop lookups and a
reschedule per use). A streaming request used three (the guard's body read, the upstream's
response headers, its first event): ~5% of a two-token stream's relay CPU (py-spy; see
docs/decisions.md, "Per-request work"). This keeps one timer handle instead and behaves the
same: when the time is up it cancels the task, and on the way out it turns that cancellation
into `TimeoutError`, unless another cancellation of the task is also pending, which then
goes on as `CancelledError`. `None` sets no limit.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["deadline"]


class deadline:  # lower case: it stands in for the function `asyncio.timeout`
    __slots__ = ("_cancelling", "_delay", "_expired", "_handle", "_task")

    def __init__(self, delay: float | None) -> None:
        self._delay = delay
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._expired = False
        self._cancelling = 0

    async def __aenter__(self) -> None:
        if self._delay is None:
            return
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("deadline should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = asyncio.get_running_loop().call_later(self._delay, self._expire)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        # As asyncio.timeout: no cancellation but ours arrived meanwhile, so it is a timeout.
        if self._expired and self._task is not None \
                and self._task.uncancel() <= self._cancelling \
                and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def _expire(self) -> None:
        self._handle = None
        self._expired = True
        assert self._task is not None
        self._task.cancel()
