"""The key store and the ledger on a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from sserelay.keys import (
    Database,
    KeyPolicy,
    KeyStore,
    Ledger,
    UnknownKeyError,
    UsageRow,
    UsageTotal,
)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(Database(tmp_path / "keys.sqlite3"))


def test_created_key_authenticates_and_only_its_hash_is_stored(store: KeyStore) -> None:
    """A new key starts with srk-, authenticates, and the file holds its hash, not the key."""
    key, secret = store.create("app", KeyPolicy(models=("a",), max_tokens=9))
    assert secret.startswith("srk-") and len(secret) > 40
    found = store.authenticate(secret)
    assert found is not None and found.id == key.id and found.policy.max_tokens == 9
    raw = store.db.path.read_bytes() + Path(f"{store.db.path}-wal").read_bytes()
    assert secret.encode() not in raw and secret[4:].encode() not in raw


@pytest.mark.parametrize("presented", ["", "srk-", "sk-abc", "srk-" + "A" * 43])
def test_unknown_keys_do_not_authenticate(store: KeyStore, presented: str) -> None:
    """Anything that is not a live key's secret authenticates as nobody."""
    store.create("app")
    assert store.authenticate(presented) is None


def test_revoked_key_stops_working_and_stays_listed(store: KeyStore) -> None:
    """Revoking by name stops the key at once; it stays in the list, marked revoked."""
    _, secret = store.create("app")
    store.revoke("app")
    assert store.authenticate(secret) is None
    assert not store.has_live_keys()
    assert [k.revoked_at is not None for k in store.list()] == [True]


def test_revoke_by_ambiguous_name_refuses(store: KeyStore) -> None:
    """Two keys with one name: revoking by that name says to use an id, and revokes nothing."""
    first, _ = store.create("twin")
    store.create("twin")
    with pytest.raises(UnknownKeyError, match="by id"):
        store.revoke("twin")
    store.revoke(first.id)
    assert [k.revoked_at is None for k in store.list()] == [False, True]


def test_missing_database_file_is_not_created_by_reads(tmp_path: Path) -> None:
    """Looking keys up in a file that does not exist finds none and creates nothing."""
    store = KeyStore(Database(tmp_path / "absent.sqlite3"))
    assert not store.has_live_keys() and store.list() == []
    assert store.authenticate("srk-x") is None
    assert not (tmp_path / "absent.sqlite3").exists()


def test_ledger_totals_per_key_and_model(store: KeyStore) -> None:
    """The ledger sums prompt and completion tokens per key and model."""
    ledger = Ledger(store.db)
    for key_id, model, prompt, completion in [("k1", "m", 3, 4), ("k1", "m", 1, 1),
                                              ("k1", "n", 2, 2), (None, "m", 5, 5)]:
        ledger.record(UsageRow(key_id, "chat", model, "up", model, prompt, completion,
                               False, "done"))
    assert ledger.totals() == [UsageTotal(None, "m", 1, 5, 5), UsageTotal("k1", "m", 2, 4, 5),
                               UsageTotal("k1", "n", 1, 2, 2)]


def test_policy_round_trips_through_json() -> None:
    """A policy survives storage unchanged."""
    policy = KeyPolicy(models=("a", "b"), max_tokens=3, params=("temperature",),
                       on_disallowed_param="refuse", system_prompt="Be kind.")
    assert KeyPolicy.from_json(policy.to_json()) == policy


def test_database_is_shared_with_another_connection(tmp_path: Path) -> None:
    """A key created by one connection (the CLI) is seen by another (the server) at once."""
    path = tmp_path / "shared.sqlite3"
    server = KeyStore(Database(path))
    server.create("first")
    _, secret = KeyStore(Database(path)).create("second")
    assert server.authenticate(secret) is not None
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_repeated_lookup_is_answered_without_any_sql(store: KeyStore) -> None:
    """The second lookup of a key (the next request) runs no statement at all: not the
    key row, not even a check of the file's version."""
    _, secret = store.create("app")
    assert store.authenticate(secret) is not None and store.has_live_keys()
    assert _sql_of_a_lookup(store, secret) == []


def test_revocation_by_another_process_is_seen_by_the_next_lookup(tmp_path: Path) -> None:
    """A key the server has just used, revoked through another connection (the CLI), is
    refused by the server's very next lookup: the cache does not delay revocation."""
    path = tmp_path / "shared.sqlite3"
    server = KeyStore(Database(path))
    cli = KeyStore(Database(path))
    key, secret = cli.create("app")
    assert server.authenticate(secret) == key and server.has_live_keys()
    cli.revoke("app")
    assert server.authenticate(secret) is None
    assert not server.has_live_keys()


def test_a_key_created_by_another_process_after_a_miss_authenticates(tmp_path: Path) -> None:
    """Remembered misses are forgotten when the file changes: a new key works at once."""
    path = tmp_path / "shared.sqlite3"
    server = KeyStore(Database(path))
    cli = KeyStore(Database(path))
    cli.revoke(cli.create("old")[0].id)
    assert not server.has_live_keys() and server.authenticate("srk-" + "x" * 43) is None
    _, secret = cli.create("new")
    assert server.has_live_keys() and server.authenticate(secret) is not None


def test_revocation_through_the_same_connection_is_seen_at_once(store: KeyStore) -> None:
    """The server's own writes (its connection's changes) also clear the cache."""
    _, secret = store.create("app")
    assert store.authenticate(secret) is not None
    KeyStore(store.db).revoke("app")
    assert store.authenticate(secret) is None and not store.has_live_keys()


def test_usage_rows_committed_meanwhile_keep_the_remembered_keys(tmp_path: Path) -> None:
    """The usage ledger writes to the same file through its own connection, up to ten
    times a second: its commits are not key changes, and the next lookup still runs no
    SQL."""
    path = tmp_path / "shared.sqlite3"
    server = KeyStore(Database(path))
    _, secret = server.create("app")
    assert server.authenticate(secret) is not None and server.has_live_keys()
    ledger = sqlite3.connect(path, isolation_level=None)
    ledger.execute("CREATE TABLE IF NOT EXISTS other (n INTEGER)")
    ledger.execute("INSERT INTO other VALUES (1)")
    ledger.close()
    assert _sql_of_a_lookup(server, secret) == []


def test_a_key_change_is_seen_when_the_changes_file_was_removed(tmp_path: Path) -> None:
    """Deleting the changes file (a clean-up, a restore) counts as a change: the next
    lookup reads the keys again rather than trusting what it remembered."""
    path = tmp_path / "shared.sqlite3"
    server = KeyStore(Database(path))
    cli = KeyStore(Database(path))
    _, secret = cli.create("app")
    assert server.authenticate(secret) is not None
    os.remove(server.changes_path)
    Database(path).writer().execute("UPDATE keys SET revoked_at = 1")
    assert server.authenticate(secret) is None


def _sql_of_a_lookup(store: KeyStore, secret: str) -> list[str]:
    """The statements one lookup of `secret` (and of whether live keys exist) runs; the key
    must be found."""
    statements: list[str] = []
    conn = store.db.writer()
    conn.set_trace_callback(statements.append)
    try:
        assert store.authenticate(secret) is not None and store.has_live_keys()
    finally:
        conn.set_trace_callback(None)
    return statements
