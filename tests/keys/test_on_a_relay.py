"""Keys and the ledger in a real relay process: no row lost to the batching on a graceful
stop, and no request served with a key revoked by the CLI in the meantime."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from sserelay.keys import Database, KeyStore, Ledger, UsageRow
from tests.conftest import Upstream, start_relay

BURST = 20


def chat(secret: str, tokens: int = 5) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini", "stream": True,
        "messages": [{"role": "user", "content": f"[[scenario: tokens={tokens}]] hello"}],
        "headers": {"authorization": f"Bearer {secret}"},
    }


async def stream_to_the_end(client: httpx.AsyncClient, url: str, secret: str) -> bytes:
    body = chat(secret)
    headers = body.pop("headers")
    async with client.stream("POST", url + "/v1/chat/completions", json=body,
                             headers=headers) as reply:
        assert reply.status_code == 200, await reply.aread()
        return await reply.aread()


def new_key(db: Path, name: str) -> tuple[str, str]:
    database = Database(db)
    try:
        key, secret = KeyStore(database).create(name)
    finally:
        database.close()
    return key.id, secret


def rows_for(db: Path, key_id: str) -> list[UsageRow]:
    database = Database(db)
    try:
        return [r for r in Ledger(database).rows() if r.key_id == key_id]
    finally:
        database.close()


def test_a_burst_of_streams_is_in_the_ledger_after_a_graceful_shutdown(
    upstream: Upstream, tmp_path: Path, run: Callable[[Coroutine[Any, Any, list[bytes]]], Any]
) -> None:
    """Rows still queued when SIGTERM comes (the delay is longer than the test) are written
    before the process exits: one row per stream of the burst, each with its tokens."""
    db = tmp_path / "keys.sqlite3"
    key_id, secret = new_key(db, "burst")
    relay = start_relay(upstream.url, env={"SSERELAY_DB": str(db),
                                           "SSERELAY_LEDGER_DELAY": "600"})
    with relay:
        async def burst() -> list[bytes]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(
                    *(stream_to_the_end(client, relay.url, secret) for _ in range(BURST))
                )

        bodies = run(burst())
        assert all(b"[DONE]" in body for body in bodies)
        assert rows_for(db, key_id) == []  # still queued: what follows tests the shutdown
        relay.stop()
        # Exiting by the signal, re-raised after the lifespan shutdown, is graceful; SIGKILL
        # (after `kill_after`) would not be.
        assert relay.proc.returncode in (0, -signal.SIGTERM), relay.output()[-2000:]
    rows = rows_for(db, key_id)
    assert len(rows) == BURST
    assert {(r.completion_tokens, r.estimated, r.ending) for r in rows} == {(5, False, "done")}


def test_a_key_revoked_by_the_cli_is_refused_by_the_running_relay_at_once(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The relay has just served a key (and remembers it); `sserelay keys revoke` in
    another process, and the relay's next request with that key gets 401."""
    db = tmp_path / "keys.sqlite3"
    _, secret = new_key(db, "soon-gone")
    new_key(db, "stays")  # so that the relay keeps requiring keys after the revocation
    with start_relay(upstream.url, env={"SSERELAY_DB": str(db)}) as relay:
        body = chat(secret)
        headers = body.pop("headers")
        url = relay.url + "/v1/chat/completions"
        for _ in range(2):
            assert httpx.post(url, json=body, headers=headers, timeout=30).status_code == 200
        subprocess.run(
            [sys.executable, "-m", "sserelay.cli", "keys", "--db", str(db), "revoke",
             "soon-gone"], capture_output=True, check=True, timeout=60,
        )
        refused = httpx.post(url, json=body, headers=headers, timeout=30)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
