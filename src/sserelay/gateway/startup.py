"""What `sserelay serve` says about the gateway when it starts."""

from __future__ import annotations

from sserelay.gateway.config import GatewayConfig
from sserelay.keys.database import Database, database_path
from sserelay.keys.store import KeyStore

__all__ = ["startup_lines"]


def startup_lines(config: GatewayConfig) -> list[str]:
    lines = []
    for upstream in config.upstreams:
        models = ", ".join("any model" if m == "*" else m for m in upstream.models)
        lines.append(f"gateway upstream {upstream.name!r} ({upstream.kind}): {models}")
    if config.aliases:
        aliases = ", ".join(f"{a} -> {t}" for a, t in config.aliases.items())
        lines.append(f"gateway aliases: {aliases}")
    db = Database(database_path(config.database))
    live = KeyStore(db).list(include_revoked=False)
    db.close()
    if live:
        lines.append(f"gateway: /v1 requires a client key; {len(live)} live key(s) in {db.path}")
    else:
        lines.append(
            f"gateway: no client keys in {db.path}: /v1 answers loopback clients only "
            "(create a key with `sserelay keys create NAME`)"
        )
    if config.abandoned == "drain":
        lines.append("gateway: a stream whose client left is read to its end for the usage")
    else:
        lines.append("gateway: a stream whose client left is closed at once")
    return lines
