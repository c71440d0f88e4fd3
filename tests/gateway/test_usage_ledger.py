"""Usage per key and model in the SQLite ledger, including streams the client abandoned."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from sserelay.keys import Database, KeyStore, Ledger, UsageRow
from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream, start_relay
from tests.gateway.conftest import marker, records_with, wait_for, write_config


def rows_for(db: Path, key_id: str) -> list[UsageRow]:
    database = Database(db)
    try:
        return [r for r in Ledger(database).rows() if r.key_id == key_id]
    finally:
        database.close()


def new_key(db: Path, name: str) -> tuple[str, str]:
    database = Database(db)
    key, secret = KeyStore(database).create(name)
    database.close()
    return key.id, secret


def abandon_stream(relay: ServerProcess, secret: str, word: str) -> None:
    """Read three chunks of a long, paced answer, then go away."""
    with openai.OpenAI(base_url=relay.url + "/v1", api_key=secret) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": f"[[scenario: tokens=30; rate=40]] {word}"}],
        )
        for _ in zip(range(3), stream, strict=False):
            pass
        stream.close()


def test_finished_streams_record_the_upstreams_usage(
    gateway: ServerProcess, gateway_db: Path
) -> None:
    """Streamed and whole answers record the upstream's token counts under key and alias."""
    key_id, secret = new_key(gateway_db, "ledger")
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=secret) as client:
        list(client.chat.completions.create(
            model="fast", stream=True,
            messages=[{"role": "user", "content": "[[scenario: tokens=7]] go"}],
        ))
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="[[scenario: tokens=4]] x")
    rows = wait_for(lambda: len(rows_for(gateway_db, key_id)) == 2 and rows_for(gateway_db, key_id),
                    "two usage rows")
    chat, legacy = rows
    assert (chat.model, chat.upstream_model, chat.completion_tokens, chat.estimated,
            chat.ending) == ("fast", "gpt-4o-mini", 7, False, "done")
    assert chat.prompt_tokens > 0
    assert (legacy.api, legacy.completion_tokens, legacy.estimated) == ("completions", 4, False)


def test_abandoned_stream_is_drained_for_its_usage(
    gateway: ServerProcess, gateway_db: Path, upstream: Upstream
) -> None:
    """In drain mode a stream the client left is read to its end and its usage recorded."""
    key_id, secret = new_key(gateway_db, "drain")
    word = marker()
    abandon_stream(gateway, secret, word)
    row = wait_for(lambda: rows_for(gateway_db, key_id), "the drained stream's usage")[0]
    assert (row.completion_tokens, row.estimated, row.ending) == (30, False, "aborted")
    record = records_with(upstream, word)[0]
    assert record["completed"] and not record["disconnected"]


@pytest.fixture(scope="module")
def cancelling(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[ServerProcess, Path]]:
    home = tmp_path_factory.mktemp("cancel")
    config = write_config(home / "gateway.toml", upstream.url, abandoned="cancel")
    db = home / "keys.sqlite3"
    with start_relay(upstream.url, "--config", str(config), env={"SSERELAY_DB": str(db)}) as relay:
        yield relay, db


def test_abandoned_stream_is_cancelled_and_estimated(
    cancelling: tuple[ServerProcess, Path], upstream: Upstream
) -> None:
    """In cancel mode a stream the client left is closed at once and its usage estimated."""
    relay, db = cancelling
    key_id, secret = new_key(db, "cancel")
    word = marker()
    abandon_stream(relay, secret, word)
    row = wait_for(lambda: rows_for(db, key_id), "the cancelled stream's usage")[0]
    assert row.estimated and row.ending == "aborted"
    assert 0 < row.completion_tokens < 30
    record = wait_for(
        lambda: [r for r in records_with(upstream, word) if r["disconnected"]],
        "the upstream to see the disconnect",
    )[0]
    assert not record["completed"]
