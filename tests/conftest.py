"""Shared fixtures: real processes on loopback (the fake upstream, sserelay itself)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import settings

from sserelay.testing.procs import ServerProcess
from sserelay.testing.redis_server import RedisServer

# Hypothesis fails an example that takes over 200 ms by default: a timing assertion, which
# a loaded machine (CI running beside other work) trips for tests that are only slow there.
# Speed is the benchmark's to measure; the properties here are about behaviour only.
settings.register_profile("sserelay", deadline=None)
settings.load_profile("sserelay")

# A made-up provider key: tests check it reaches the upstream and nothing else.
PROVIDER_KEY = "sk-test-PROVIDERKEY0123456789abcdef"


class Upstream:
    """The fake upstream process plus access to what it recorded."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.url = server.url

    def requests(self) -> list[dict[str, Any]]:
        reply = httpx.get(self.url + "/_fake/requests", timeout=10)
        reply.raise_for_status()
        records: list[dict[str, Any]] = reply.json()
        return records

    def reset(self) -> None:
        httpx.post(self.url + "/_fake/reset", timeout=10).raise_for_status()


def start_relay(
    upstream_url: str, *extra_args: str, env: dict[str, str] | None = None
) -> ServerProcess:
    argv = [sys.executable, "-m", "sserelay.cli", "serve", "--port", "{port}", *extra_args]
    base_env = {
        "OPENAI_API_KEY": PROVIDER_KEY,
        "OPENAI_BASE_URL": upstream_url + "/v1",
        "SSERELAY_CHAT_MODEL": "fake-chat",
        "SSERELAY_COMPLETION_MODEL": "fake-instruct",
        # A crash (in the C speedups, say) leaves the Python stack of every thread in the
        # log instead of nothing; `assert_still_running` shows it.
        "PYTHONFAULTHANDLER": "1",
    }
    return ServerProcess(argv, env={**base_env, **(env or {})})


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    """A real fake-OpenAI server process that only accepts PROVIDER_KEY."""
    argv = [
        sys.executable,
        "-m",
        "sserelay.testing.fake_upstream",
        "--port",
        "{port}",
        "--require-key",
        PROVIDER_KEY,
    ]
    with ServerProcess(argv) as server:
        yield Upstream(server)


def assert_still_running(server: ServerProcess) -> None:
    """Fail, with the end of its log, if `server` ended without being stopped (a test that
    signals it uses `ServerProcess.send_signal`): a relay that crashed mid-test otherwise
    shows only as its clients' dropped connections."""
    code = server.exited_by_itself
    if code is None:
        return
    tail = "\n".join(server.output().splitlines()[-60:])
    raise AssertionError(f"the server exited by itself with code {code}; its log ends:\n{tail}")


@pytest.fixture(scope="session")
def relay(upstream: Upstream) -> Iterator[ServerProcess]:
    """sserelay as a real server process, relaying from the fake upstream."""
    with start_relay(upstream.url) as server:
        yield server
        assert_still_running(server)


@pytest.fixture
def client(relay: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=relay.url, timeout=30) as http_client:
        yield http_client


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server on a free port (never the machine's own on 6379)."""
    with RedisServer() as server:
        yield server


T = TypeVar("T")
# Generous: only a hang should ever reach it, and a hang must fail with a traceback.
RUN_TIMEOUT = 60.0


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run one coroutine on a fresh event loop, failing (not hanging) after RUN_TIMEOUT."""

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(asyncio.wait_for(coro, RUN_TIMEOUT))

    return run
