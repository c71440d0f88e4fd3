"""Fixtures for the counters suite: each test runs against the memory and the Redis counters.

The Redis counters use the session's throwaway redis-server (tests/conftest.py) and a key
prefix of their own per test, so tests cannot see each other's counts.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

import pytest

from sserelay.limits import Counters, MemoryCounters, RedisCounters
from sserelay.testing.redis_server import RedisServer

T = TypeVar("T")
# Only a hang should ever reach it, and a hang must fail with a traceback.
RUN_TIMEOUT = 60.0


class CountersFactory(Protocol):
    def __call__(self, *, lease: float = ...) -> Counters: ...


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run one coroutine on a fresh event loop, failing (not hanging) after RUN_TIMEOUT."""

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(asyncio.wait_for(coro, RUN_TIMEOUT))

    return run


@pytest.fixture
def redis_counters(redis_server: RedisServer) -> Callable[..., RedisCounters]:
    """RedisCounters sharing this test's key prefix, as sserelay instances would."""
    prefix = f"test-{secrets.token_hex(6)}:"

    def make(**options: Any) -> RedisCounters:
        return RedisCounters(redis_server.url, prefix=prefix, **options)

    return make


@pytest.fixture(params=["memory", "redis"])
def make_counters(request: pytest.FixtureRequest) -> CountersFactory:
    """Counters of each implementation; every shared test runs against both."""
    if request.param == "memory":
        return lambda **_: MemoryCounters()
    make_redis: CountersFactory = request.getfixturevalue("redis_counters")
    return make_redis
