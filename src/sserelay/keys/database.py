"""The SQLite file that holds client keys and the usage ledger.

One file, `./sserelay.sqlite3` unless `SSERELAY_DB` (or `--db`) says otherwise, shared by the
server and the `sserelay keys` command, possibly at the same time: WAL mode lets readers
and one writer proceed together, and a busy timeout covers the rest. The file is created
on the first write only, so merely starting sserelay (or running its tests) leaves no file
behind.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DEFAULT_DB", "Database", "database_path"]

DEFAULT_DB = "sserelay.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id          TEXT PRIMARY KEY,        -- key_<hex>: how people and logs name a key
    name        TEXT NOT NULL,
    hint        TEXT NOT NULL,           -- the first characters, to recognise a key
    secret_hash BLOB NOT NULL UNIQUE,    -- sha256 of the whole key (docs/decisions.md)
    policy      TEXT NOT NULL,           -- JSON: models, max_tokens, params, system prompt
    created_at  REAL NOT NULL,
    revoked_at  REAL
);
CREATE TABLE IF NOT EXISTS usage (
    id                INTEGER PRIMARY KEY,
    at                REAL NOT NULL,
    key_id            TEXT,              -- NULL: a loopback client, no keys configured
    api               TEXT NOT NULL,     -- chat | completions | responses | messages
    model             TEXT NOT NULL,     -- as the client asked (an alias stays an alias)
    upstream          TEXT NOT NULL,
    upstream_model    TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    estimated         INTEGER NOT NULL,  -- 1: no usage from the upstream; chunks counted
    ending            TEXT NOT NULL      -- done | error | aborted | truncated
);
CREATE INDEX IF NOT EXISTS usage_by_key ON usage (key_id, model);
"""


def database_path(explicit: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Path:
    """`explicit`, else `$SSERELAY_DB`, else ./sserelay.sqlite3."""
    env = os.environ if env is None else env
    return Path(explicit or env.get("SSERELAY_DB") or DEFAULT_DB)


class Database:
    """A lazily opened connection; `reader()` is None while the file does not exist."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def reader(self) -> sqlite3.Connection | None:
        if self._conn is None and not self.path.exists():
            return None
        return self.writer()

    def writer(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit is durable at the next checkpoint, not fsynced each time; a
            # power cut may lose the last few usage rows, never corrupt the file.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
