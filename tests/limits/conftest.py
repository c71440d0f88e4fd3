"""Fixtures for the counters suite: each test runs against the memory and the Redis counters.

The Redis counters use the session's throwaway redis-server (tests/conftest.py) and a key
prefix of their own per test, so tests cannot see each other's counts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Protocol

import pytest

from sserelay.limits import Counters, MemoryCounters, RedisCounters
from sserelay.testing.redis_server import RedisServer


class CountersFactory(Protocol):
    def __call__(self, *, lease: float = ...) -> Counters: ...


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
