"""What only the Redis counters do: hold across instances, survive a dead instance, and fail
open when Redis is away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sserelay.limits import RedisCounters, Take
from sserelay.testing.procs import free_port

Run = Callable[[Coroutine[Any, Any, Any]], Any]
MINUTE = 60.0


def test_two_instances_share_windows_and_slots(
    redis_counters: Callable[..., RedisCounters], run: Run
) -> None:
    """What one instance counted, another instance sees: one key's limits hold across them."""

    async def scenario() -> tuple[list[float], bool]:
        async with redis_counters() as one, redis_counters() as two:
            await one.take([Take("r:a", 1, 1)], MINUTE)
            await one.acquire("c:a", 1, "on-one")
            return await two.take([Take("r:a", 1, 1)], MINUTE), await two.acquire(
                "c:a", 1, "on-two"
            )

    waits, slot = run(scenario())
    assert waits[0] > 0
    assert slot is False


def test_held_slots_are_renewed_past_their_lease(
    redis_counters: Callable[..., RedisCounters], run: Run
) -> None:
    """A slot held for several leases stays held: the instance renews it."""

    async def scenario() -> bool:
        async with redis_counters(lease=0.6) as one, redis_counters(lease=0.6) as two:
            assert await one.acquire("c:a", 1, "long-stream")
            await asyncio.sleep(2.0)
            return await two.acquire("c:a", 1, "other")

    assert run(scenario()) is False


def test_slots_of_a_dead_instance_lapse_after_the_lease(
    redis_counters: Callable[..., RedisCounters], run: Run
) -> None:
    """An instance that dies without releasing (no renewals) frees its slots after the lease."""

    async def scenario() -> bool:
        dead = redis_counters(lease=0.3)
        assert await dead.acquire("c:a", 1, "orphan")
        assert dead._renewer is not None
        dead._renewer.cancel()  # the process died: nothing renews or releases
        try:
            async with redis_counters(lease=0.3) as alive:
                for _ in range(100):
                    if await alive.acquire("c:a", 1, "newcomer"):
                        return True
                    await asyncio.sleep(0.05)
                return False
        finally:
            await dead._redis.aclose()  # the dead process's socket, closed without a release

    assert run(scenario()) is True


def test_unreachable_redis_admits_and_warns(run: Run, caplog: pytest.LogCaptureFixture) -> None:
    """With Redis away, limits are not enforced (no outage) and a warning says so."""

    async def scenario() -> tuple[list[float], bool]:
        async with RedisCounters(f"redis://127.0.0.1:{free_port()}/0") as counters:
            return await counters.take([Take("r:a", 1, 1)], MINUTE), await counters.acquire(
                "c:a", 1, "h"
            )

    with caplog.at_level(logging.WARNING, logger="sserelay.limits"):
        waits, slot = run(scenario())
    assert waits == [0.0] and slot is True
    assert "not enforcing limits" in caplog.text
