"""Gateway fixtures: sserelay started with a TOML config and a key database, in front of the
session's fake upstream; keys made through the real `sserelay keys create` command."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sserelay.testing.procs import ServerProcess
from tests.conftest import PROVIDER_KEY, Upstream, start_relay


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    """The gateway's own fake upstream process (only PROVIDER_KEY opens it): its records of
    model listings and Anthropic requests stay out of other test directories' way."""
    argv = [sys.executable, "-m", "sserelay.testing.fake_upstream", "--port", "{port}",
            "--require-key", PROVIDER_KEY]
    with ServerProcess(argv) as server:
        yield Upstream(server)


def write_config(path: Path, upstream_url: str, *, abandoned: str = "drain", extra: str = "",
                 gateway: str = "") -> Path:
    path.write_text(f"""
[gateway]
abandoned_streams = "{abandoned}"
{gateway}

[retry]
attempts = 2
backoff = 0.05
max_wait = 5

[upstreams.main]
kind = "openai"
base_url = "{upstream_url}/v1"
models = ["*"]

[upstreams.flaky]
base_url = "{upstream_url}/v1"
headers = {{ "X-Fake-Scenario" = "status=503" }}
models = ["flaky-first"]

[upstreams.backup]
base_url = "{upstream_url}/v1"
models = ["flaky-first"]

[upstreams.claude]
kind = "anthropic"
base_url = "{upstream_url}"
api_key_env = "OPENAI_API_KEY"
models = ["claude-fake"]

[upstreams.responder]
base_url = "{upstream_url}/v1"
responses = true
models = ["gpt-resp"]

[aliases]
fast = "gpt-4o-mini"
sonnet = "claude-fake"
{extra}
""")
    return path


def create_key(db: Path, name: str, *options: str) -> str:
    """`sserelay keys create`, as an operator runs it; returns the printed key."""
    done = subprocess.run(
        [sys.executable, "-m", "sserelay.cli", "keys", "--db", str(db), "create", name, *options],
        capture_output=True, text=True, check=True,
    )
    return done.stdout.strip()


@dataclass
class Keys:
    full: str
    limited: str
    strict: str
    guided: str
    revoked: str


@pytest.fixture(scope="session")
def gateway_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway") / "keys.sqlite3"


@pytest.fixture(scope="session")
def keys(gateway_db: Path) -> Keys:
    revoked = create_key(gateway_db, "gone")
    subprocess.run(
        [sys.executable, "-m", "sserelay.cli", "keys", "--db", str(gateway_db), "revoke", "gone"],
        capture_output=True, check=True,
    )
    return Keys(
        full=create_key(gateway_db, "full"),
        limited=create_key(gateway_db, "limited", "--model", "gpt-4o-mini", "--model", "fast",
                           "--max-tokens", "5", "--param", "temperature"),
        strict=create_key(gateway_db, "strict", "--param", "temperature", "--refuse-params"),
        guided=create_key(gateway_db, "guided", "--system-prompt", "Answer in French."),
        revoked=revoked,
    )


@pytest.fixture(scope="session")
def gateway(upstream: Upstream, keys: Keys, gateway_db: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """sserelay with the gateway configured by a TOML file, keys in `gateway_db`."""
    config = write_config(tmp_path_factory.mktemp("config") / "gateway.toml", upstream.url)
    with start_relay(upstream.url, "--config", str(config),
                     env={"SSERELAY_DB": str(gateway_db)}) as server:
        yield server


def marker() -> str:
    """A unique word to find one test's requests among the upstream's records."""
    return uuid.uuid4().hex[:12]


def records_with(upstream: Upstream, word: str) -> list[dict[str, Any]]:
    return [r for r in upstream.requests() if word in str(r["body"])]


def wait_for(check: Callable[[], Any], what: str, tries: int = 150) -> Any:
    """Poll `check` until it returns something truthy (a bounded wait, not a timing claim)."""
    for _ in range(tries):
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")
