"""Client keys: created once and shown once, stored as a SHA-256 hash, revocable.

A key is `srk-` and 43 characters of `secrets.token_urlsafe(32)`: 256 random bits, so a
fast hash is enough and lets a lookup use the index (docs/decisions.md, "Client keys are
SHA-256 hashes, not bcrypt"). What a key may do is its `KeyPolicy`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import orjson

from sserelay.keys.database import Database

__all__ = ["KEY_PREFIX", "ClientKey", "KeyPolicy", "KeyStore", "UnknownKeyError", "hash_key"]

KEY_PREFIX = "srk-"
_HINT_CHARS = 8

ParamMode = Literal["drop", "refuse"]


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """What a key may ask for. The defaults allow everything routed, with no cap."""

    models: tuple[str, ...] = ("*",)
    """Model names (or aliases) the key may use; "*" is every routed model."""
    max_tokens: int | None = None
    """Output tokens per request: larger requests are clamped, requests without one get it."""
    params: tuple[str, ...] | None = None
    """Request fields that pass besides the essentials; None: all pass."""
    on_disallowed_param: ParamMode = "drop"
    """A field outside `params` is silently dropped, or refused with a 400."""
    system_prompt: str | None = None
    """Sent first in every conversation; the client cannot remove or replace it."""

    def allows_model(self, name: str) -> bool:
        return "*" in self.models or name in self.models

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> KeyPolicy:
        data: dict[str, Any] = orjson.loads(raw)
        params = data.get("params")
        return cls(
            models=tuple(data.get("models") or ("*",)),
            max_tokens=data.get("max_tokens"),
            params=None if params is None else tuple(params),
            on_disallowed_param="refuse" if data.get("on_disallowed_param") == "refuse" else "drop",
            system_prompt=data.get("system_prompt"),
        )


@dataclass(frozen=True, slots=True)
class ClientKey:
    id: str
    name: str
    hint: str
    policy: KeyPolicy = field(default_factory=KeyPolicy)
    created_at: float = 0.0
    revoked_at: float | None = None


class UnknownKeyError(LookupError):
    """No such key, or the name matches several."""


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _row_to_key(row: tuple[Any, ...]) -> ClientKey:
    key_id, name, hint, policy, created_at, revoked_at = row
    return ClientKey(key_id, name, hint, KeyPolicy.from_json(policy), created_at, revoked_at)


_COLUMNS = "id, name, hint, policy, created_at, revoked_at"
_REMEMBERED = 1024  # secrets, found or not; past this the cache starts again


class KeyStore:
    """Keys in the `keys` table of `db`. `policies` (the configuration file's `[keys.NAME]`)
    replace the policy stored with every key of that name."""

    def __init__(self, db: Database, policies: Mapping[str, KeyPolicy] | None = None) -> None:
        self.db = db
        self.policies = dict(policies or {})
        # Every process that changes a key appends a line to this file after its commit
        # (`_announce`): the remembered answers hold while its size (and inode) and this
        # connection's own changes stay the same.
        self.changes_path = os.fspath(db.path) + ".keys-changed"
        self._file_state: tuple[sqlite3.Connection, int, int, int] | None = None
        self._found: dict[bytes, ClientKey | None] = {}
        self._has_live: bool | None = None

    def _unchanged(self, conn: sqlite3.Connection) -> bool:
        """Whether the keys are as they were when the remembered answers were read (else
        forget them). One stat() of the changes file and no SQL: the usage ledger's commits
        to the same database do not make the keys look changed, as `PRAGMA data_version`
        did (docs/decisions.md, "Per-request work, fourth round")."""
        try:
            found = os.stat(self.changes_path)
            size, inode = found.st_size, found.st_ino
        except OSError:
            size = inode = -1
        state = (conn, size, inode, conn.total_changes)
        if state == self._file_state:
            return True
        self._file_state = state
        self._found.clear()
        self._has_live = None
        return False

    def _announce(self, what: str) -> None:
        """Tell every process using this database (running relays) that the keys changed:
        one line appended, after the commit, so that a relay's next lookup reads them
        again. An append is one write, whole, whoever else appends."""
        line = f"{time.time():.6f} {os.getpid()} {what}\n".encode()
        fd = os.open(self.changes_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def _key(self, row: tuple[Any, ...]) -> ClientKey:
        key = _row_to_key(row)
        policy = self.policies.get(key.name)
        return key if policy is None else replace(key, policy=policy)

    def create(self, name: str, policy: KeyPolicy | None = None) -> tuple[ClientKey, str]:
        """A new key and its secret: the only time the secret exists outside the client."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ClientKey(
            id="key_" + secrets.token_hex(6),
            name=name,
            hint=secret[: len(KEY_PREFIX) + _HINT_CHARS] + "…",
            policy=policy or KeyPolicy(),
            created_at=time.time(),
        )
        self.db.writer().execute(
            "INSERT INTO keys (id, name, hint, secret_hash, policy, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key.id, key.name, key.hint, hash_key(secret), key.policy.to_json().decode(),
             key.created_at),
        )
        self._announce(f"created {key.id}")
        return key, secret

    def list(self, *, include_revoked: bool = True) -> list[ClientKey]:
        conn = self.db.reader()
        if conn is None:
            return []
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        rows = conn.execute(f"SELECT {_COLUMNS} FROM keys{where} ORDER BY created_at").fetchall()
        return [self._key(row) for row in rows]

    def revoke(self, id_or_name: str) -> ClientKey:
        """Revoke the key with this id (or this unique name); it stops working at once."""
        conn = self.db.reader()
        rows = [] if conn is None else conn.execute(
            f"SELECT {_COLUMNS} FROM keys WHERE id = ? OR name = ?", (id_or_name, id_or_name)
        ).fetchall()
        exact = [row for row in rows if row[0] == id_or_name]
        if exact:
            rows = exact
        if not rows:
            raise UnknownKeyError(f"no key has the id or name {id_or_name!r}")
        if len(rows) > 1:
            ids = ", ".join(row[0] for row in rows)
            raise UnknownKeyError(
                f"several keys are named {id_or_name!r} ({ids}); revoke one by id"
            )
        key = _row_to_key(rows[0])
        if key.revoked_at is None:
            now = time.time()
            self.db.writer().execute("UPDATE keys SET revoked_at = ? WHERE id = ?", (now, key.id))
            self._announce(f"revoked {key.id}")
            key = ClientKey(key.id, key.name, key.hint, key.policy, key.created_at, now)
        return key

    def authenticate(self, secret: str) -> ClientKey | None:
        """The live key whose secret this is, else None."""
        if not secret.startswith(KEY_PREFIX):
            return None
        conn = self.db.reader()
        if conn is None:
            return None
        secret_hash = hash_key(secret)
        try:
            if self._unchanged(conn) and secret_hash in self._found:
                return self._found[secret_hash]
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM keys WHERE secret_hash = ? AND revoked_at IS NULL",
                (secret_hash,),
            ).fetchone()
        except sqlite3.OperationalError:
            return None
        key = None if row is None else self._key(row)
        if len(self._found) >= _REMEMBERED:
            self._found.clear()
        self._found[secret_hash] = key
        return key

    def has_live_keys(self) -> bool:
        conn = self.db.reader()
        if conn is None:
            return False
        if self._unchanged(conn) and self._has_live is not None:
            return self._has_live
        row = conn.execute("SELECT 1 FROM keys WHERE revoked_at IS NULL LIMIT 1").fetchone()
        self._has_live = row is not None
        return self._has_live
