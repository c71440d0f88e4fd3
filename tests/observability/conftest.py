"""sserelay observed: a real relay process in front of the session's fake upstream, with a
client key, its JSON log in a file and its metrics at /metrics."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream, start_relay
from tests.gateway.conftest import create_key, wait_for


@dataclass
class Observed:
    server: ServerProcess
    log: Path
    key: str
    key_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers=self.auth, timeout=30)

    def lines(self) -> list[dict[str, Any]]:
        text = self.log.read_text(encoding="utf-8") if self.log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of GET /metrics, parsed by prometheus-client's own parser."""
        text = httpx.get(self.server.url + "/metrics", timeout=10).text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def sample(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def marker() -> str:
    return "m" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def observed(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Observed]:
    home = tmp_path_factory.mktemp("observed")
    db = home / "keys.sqlite3"
    key = create_key(db, "observer")
    key_id = wait_for(lambda: _key_id(db), "the key's id")
    env = {"SSERELAY_GATEWAY_DATABASE": str(db),
           "SSERELAY_LOGGING_FILE": str(home / "sserelay.jsonl")}
    with start_relay(upstream.url, env=env) as server:
        yield Observed(server, home / "sserelay.jsonl", key, key_id)


def _key_id(db: Path) -> str:
    from sserelay.keys import Database, KeyStore

    database = Database(db)
    try:
        return KeyStore(database).list()[0].id
    finally:
        database.close()
