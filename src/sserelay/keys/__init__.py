"""Client keys and the usage ledger, in one SQLite file; `sserelay keys` manages them."""

from __future__ import annotations

from sserelay.keys.database import DEFAULT_DB, Database, database_path
from sserelay.keys.ledger import Ledger, Usage, UsageRow, UsageTotal
from sserelay.keys.store import KEY_PREFIX, ClientKey, KeyPolicy, KeyStore, UnknownKeyError

__all__ = [
    "DEFAULT_DB",
    "KEY_PREFIX",
    "ClientKey",
    "Database",
    "KeyPolicy",
    "KeyStore",
    "Ledger",
    "UnknownKeyError",
    "Usage",
    "UsageRow",
    "UsageTotal",
    "database_path",
]
