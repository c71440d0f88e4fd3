"""The shared suite: every behaviour here holds for the memory and the Redis counters alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sserelay.limits import NEVER, Take
from sserelay.limits.counters import wait_for_room

from .conftest import CountersFactory

Run = Callable[[Coroutine[Any, Any, Any]], Any]
MINUTE = 60.0


@pytest.mark.parametrize(
    ("prev", "curr", "fraction", "amount", "limit", "windows"),
    [
        (0, 0, 0.0, 1, 1, 0.0),  # empty: room now
        (0, 9, 0.5, 1, 10, 0.0),  # exactly at the limit after this one: room now
        (0, 10, 0.5, 1, 10, 0.6),  # full: past the boundary, once 10 % of it slid out
        (10, 0, 0.5, 1, 10, 0.0),  # half of the previous window has slid out already
        (10, 5, 0.0, 1, 10, 0.6),  # the previous must slide out to 4: 60 % of a window
        (0, 0, 0.3, 11, 10, NEVER),  # larger than the limit itself: never
    ],
)
def test_wait_for_room_follows_the_sliding_estimate(
    prev: int, curr: int, fraction: float, amount: int, limit: int, windows: float
) -> None:
    """The wait, in windows, until the sliding estimate has room for the amount."""
    assert wait_for_room(prev, curr, fraction, amount, limit) == pytest.approx(windows)


def test_takes_within_the_limit_are_admitted_then_refused_with_a_wait(
    make_counters: CountersFactory, run: Run
) -> None:
    """Up to the limit a take is admitted (wait 0); past it the wait is positive and at most
    two windows."""

    async def scenario() -> list[float]:
        async with make_counters() as counters:
            waits = [
                (await counters.take([Take("r:a", 1, 3)], MINUTE))[0] for _ in range(4)
            ]
        return waits

    waits = run(scenario())
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0 < waits[3] <= 2 * MINUTE


def test_a_refused_take_adds_nothing_to_any_window(
    make_counters: CountersFactory, run: Run
) -> None:
    """Takes are all or nothing: when one window has no room, none is counted."""

    async def scenario() -> tuple[list[float], list[float], list[float]]:
        async with make_counters() as counters:
            refused = await counters.take([Take("r:a", 1, 1), Take("t:a", 5, 4)], MINUTE)
            first = await counters.take([Take("r:a", 1, 1)], MINUTE)
            second = await counters.take([Take("r:a", 1, 1)], MINUTE)
        return refused, first, second

    refused, first, second = run(scenario())
    assert refused == [0.0, NEVER]
    assert first == [0.0]
    assert second[0] > 0


def test_added_usage_counts_against_later_takes(make_counters: CountersFactory, run: Run) -> None:
    """Usage added after the fact (completion tokens) fills the window for the next take."""

    async def scenario() -> tuple[list[float], list[float]]:
        async with make_counters() as counters:
            await counters.add("t:a", 1000, MINUTE)
            full = await counters.take([Take("t:a", 1, 1000)], MINUTE)
            other = await counters.take([Take("t:b", 1, 1000)], MINUTE)
        return full, other

    full, other = run(scenario())
    assert full[0] > 0
    assert other == [0.0]


def test_a_full_window_has_room_again_once_it_slides_by(
    make_counters: CountersFactory, run: Run
) -> None:
    """After the window has passed, the same take is admitted again (a bounded wait)."""

    async def scenario() -> list[float]:
        async with make_counters() as counters:
            window = 0.2
            assert await counters.take([Take("r:a", 2, 2)], window) == [0.0]
            for _ in range(100):
                wait = await counters.take([Take("r:a", 2, 2)], window)
                if wait == [0.0]:
                    return wait
                await asyncio.sleep(0.05)
            return wait

    assert run(scenario()) == [0.0]


def test_slots_up_to_the_limit_then_none_until_one_is_released(
    make_counters: CountersFactory, run: Run
) -> None:
    """`limit` holders get a slot, the next does not; a release makes room; taking again
    for a holder that has one does not use another."""

    async def scenario() -> list[bool]:
        async with make_counters() as counters:
            got = [await counters.acquire("c:a", 2, h) for h in ("h1", "h2", "h3")]
            got.append(await counters.acquire("c:a", 2, "h1"))
            await counters.release("c:a", "h2")
            got.append(await counters.acquire("c:a", 2, "h3"))
            got.append(await counters.acquire("c:b", 2, "h4"))
        return got

    assert run(scenario()) == [True, True, False, True, True, True]


def test_releasing_a_slot_that_is_not_held_changes_nothing(
    make_counters: CountersFactory, run: Run
) -> None:
    """A second release, or one for an unknown holder, frees no one else's slot."""

    async def scenario() -> list[bool]:
        async with make_counters() as counters:
            await counters.acquire("c:a", 1, "h1")
            await counters.release("c:a", "h2")
            await counters.release("c:z", "h1")
            return [await counters.acquire("c:a", 1, "h3")]

    assert run(scenario()) == [False]
