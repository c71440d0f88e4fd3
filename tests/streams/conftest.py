"""Fixtures for the stream-log suite: one factory per implementation, and a bounded runner.

The Redis log runs against a throwaway redis-server started once per session (never the
machine's own Redis); every test gets its own key prefix, so tests cannot see each other.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Protocol

import pytest

from sserelay.streams import MemoryStreamLog, RedisStreamLog, StreamLog
from sserelay.testing.redis_server import RedisServer


class LogFactory(Protocol):
    def __call__(self, *, retention: float = ..., max_entries: int = ...) -> StreamLog: ...


@pytest.fixture
def redis_log(redis_server: RedisServer) -> Callable[..., RedisStreamLog]:
    """Build RedisStreamLogs that share this test's key prefix, like sserelay instances would."""
    prefix = f"test-{secrets.token_hex(6)}:"

    def make(**options: Any) -> RedisStreamLog:
        return RedisStreamLog(redis_server.url, prefix=prefix, **options)

    return make


@pytest.fixture(params=["memory", "redis"])
def make_log(request: pytest.FixtureRequest) -> LogFactory:
    """Build a log of each implementation; every shared test runs against both."""
    if request.param == "memory":
        return MemoryStreamLog
    make_redis: Callable[..., RedisStreamLog] = request.getfixturevalue("redis_log")
    # A short lease keeps the producer-loss paths quick without changing their logic.
    return lambda **options: make_redis(lease_ttl=1.0, **options)
