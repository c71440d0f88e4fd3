"""A slow first token: the gateway waits a bounded time for it before starting the stream,
then keeps the stream alive with heartbeat comments."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream, start_relay
from tests.gateway.conftest import marker, records_with, wait_for, write_config


@pytest.fixture(scope="module")
def impatient(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("slow")
    config = write_config(home / "gateway.toml", upstream.url, abandoned="cancel",
                          gateway="first_byte_wait = 0.3\nheartbeat = 0.3")
    with start_relay(upstream.url, "--config", str(config),
                     env={"SSERELAY_DB": str(home / "db.sqlite3")}) as relay:
        yield relay


def test_silent_upstream_gets_headers_then_heartbeats(
    impatient: ServerProcess, upstream: Upstream
) -> None:
    """A silent upstream: the client gets its 200, then `: ping`; leaving closes the upstream."""
    word = marker()
    body = {"model": "gpt-3.5-turbo-instruct", "stream": True,
            "prompt": f"[[scenario: stall_after=0]] {word}"}
    with httpx.Client(timeout=30) as client, client.stream(
        "POST", impatient.url + "/v1/completions", json=body
    ) as reply:
        assert reply.status_code == 200
        lines = reply.iter_lines()
        assert next(lines) == ": ping"
    wait_for(lambda: records_with(upstream, word)[0]["disconnected"],
             "the upstream to see the client leave")
