"""The fault suite's relays: real sserelay processes with short limits, in front of the
session's fake upstream, and a check that no output ever shows the provider key or a
traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sserelay.testing.procs import ServerProcess
from tests.conftest import PROVIDER_KEY, Upstream, assert_still_running, start_relay

# Short limits, so that each can be seen to fire within a test's bounded waits.
STRICT = (
    "--heartbeat", "0.3",
    "--first-token-timeout", "2",
    "--idle-timeout", "1",
    "--max-duration", "6",
    "--slow-client-timeout", "1",
)  # fmt: skip


def assert_clean(text: str, where: str) -> None:
    """No provider key and no Python traceback, anywhere a client or an operator can see."""
    assert PROVIDER_KEY not in text, f"the provider key leaked into {where}"
    assert "Traceback" not in text, f"a traceback in {where}:\n{text[-3000:]}"


class Relay:
    """A relay process plus everything its clients received, scanned when it stops."""

    def __init__(self, server: ServerProcess, db: Path | None = None) -> None:
        self.server = server
        self.db = db
        self.url = server.url
        self.port = server.port
        self.received: list[str] = []

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **options)

    def keep(self, text: str) -> str:
        self.received.append(text)
        return text

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.server.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def check_clean(self) -> None:
        assert_clean(self.server.output(), "the relay's output")
        for text in self.received:
            assert_clean(text, "a response")


@pytest.fixture
def relay_factory(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Relay]]:
    """Start relays (with the strict limits and their own key database); each is stopped
    and its output scanned at the end of the test."""
    started: list[Relay] = []

    def make(*args: str, strict: bool = True, env: dict[str, str] | None = None,
             db: Path | None = None) -> Relay:
        db = db or tmp_path_factory.mktemp("faults") / "keys.sqlite3"
        server = start_relay(upstream.url, *(STRICT if strict else ()), *args,
                             env={"SSERELAY_DB": str(db), **(env or {})})
        server.start()
        relay = Relay(server, db)
        started.append(relay)
        return relay

    yield make
    # Every relay is stopped before any check can fail: one left running would outlive the
    # test and fail a later one when its Popen is collected ("subprocess is still running").
    for relay in started:
        relay.server.stop()
    for relay in started:
        assert_still_running(relay.server)
    for relay in started:
        relay.server.close()
        relay.check_clean()


@pytest.fixture(scope="module")
def strict_relay(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Relay]:
    """One relay with the strict limits for a whole module, scanned when the module ends."""
    db = tmp_path_factory.mktemp("faults") / "keys.sqlite3"
    with start_relay(upstream.url, *STRICT, env={"SSERELAY_DB": str(db)}) as server:
        relay = Relay(server)
        yield relay
        assert_still_running(server)
    relay.check_clean()


def create_key(db: Path, name: str) -> str:
    """`sserelay keys create`, as an operator runs it; returns the printed key."""
    done = subprocess.run(
        [sys.executable, "-m", "sserelay.cli", "keys", "--db", str(db), "create", name],
        capture_output=True, text=True, check=True,
    )
    return done.stdout.strip()


def record_of(upstream: Upstream, marker: str) -> dict[str, Any]:
    found = [r for r in upstream.requests() if marker in json.dumps(r.get("body"))]
    assert len(found) >= 1, f"no upstream request carried {marker}"
    return found[-1]


def wait_for(check: Callable[[], Any], what: str, tries: int = 200) -> Any:
    """Poll `check` until it returns something truthy: a bounded wait, not a timing claim."""
    for _ in range(tries):
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def upstream_closed(upstream: Upstream, marker: str) -> dict[str, Any]:
    """The upstream's record of the request carrying `marker`, once it saw it closed."""
    return wait_for(  # type: ignore[no-any-return]
        lambda: (r := record_of(upstream, marker))["disconnected"] and r,
        f"the upstream to see {marker}'s request closed",
    )
