"""Who is asking: an sserelay client key, or (with no keys configured) this machine.

Clients send their sserelay key the way their SDK sends a provider key: `Authorization:
Bearer srk-...` (openai) or `x-api-key: srk-...` (anthropic). Until the first key exists the
gateway has nobody to tell apart, so it answers loopback clients only (said at startup) and
refuses everyone else, instead of relaying the provider key's power to the network.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

from sserelay.gateway.errors import GatewayError
from sserelay.keys.store import ClientKey, KeyStore
from sserelay.observability.hooks import note_key

__all__ = ["authenticate", "is_loopback"]


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return request.headers.get("x-api-key") or None


def authenticate(request: Request, keys: KeyStore) -> ClientKey | None:
    """The caller's live key, or None for a loopback caller while no key exists.

    Raises GatewayError(401) otherwise; the message never repeats what was presented.
    """
    token = _presented_key(request)
    if token is not None:
        key = keys.authenticate(token)
        if key is not None:
            note_key(key.id)
            return key
    if not keys.has_live_keys():
        if is_loopback(request.client.host if request.client else None):
            return None
        raise GatewayError(
            401, "sserelay has no client keys yet, so it answers only on this machine. "
            "Create one with `sserelay keys create`.", "no_keys_configured",
        )
    if token is None:
        raise GatewayError(
            401, "Send an sserelay key: `Authorization: Bearer srk-...` or `x-api-key`.",
            "missing_api_key",
        )
    raise GatewayError(401, "Incorrect API key provided.", "invalid_api_key")
