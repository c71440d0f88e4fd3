"""`deadline` ends a block the way `asyncio.timeout` does."""

from __future__ import annotations

import asyncio
import time

import pytest

from sserelay.deadline import deadline


def test_a_block_that_takes_too_long_raises_timeout_error() -> None:
    """Past its time the block is cancelled and the caller gets TimeoutError."""
    async def run() -> None:
        async with deadline(0.01):
            await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        asyncio.run(run())


def test_a_block_that_finishes_in_time_is_left_alone() -> None:
    """In time, or with no limit: the block's result, and no cancellation left behind."""
    async def run() -> str:
        async with deadline(10):
            await asyncio.sleep(0)
        async with deadline(None):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.02)  # the first timer is gone: nothing cancels this
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        return "done"

    assert asyncio.run(run()) == "done"


def test_an_outside_cancellation_stays_a_cancellation() -> None:
    """Cancelled from outside while the deadline runs: CancelledError, not TimeoutError."""
    async def inner() -> None:
        async with deadline(10):
            await asyncio.sleep(10)

    async def run() -> None:
        task = asyncio.create_task(inner())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())


def test_an_outside_cancellation_at_the_deadline_is_not_swallowed() -> None:
    """Cancelled from outside just after the time ran out, before the block saw either:
    CancelledError, as with asyncio.timeout (the outside cancellation is not a timeout)."""
    async def inner() -> None:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        assert task is not None
        async with deadline(0.01):
            loop.call_later(0.01, task.cancel)  # due just after the deadline's own timer
            time.sleep(0.03)  # both are overdue when the loop next runs its timers
            await asyncio.sleep(10)

    async def run() -> None:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(inner())

    asyncio.run(run())
