"""Who is asking: an sserelay client key, or (with no keys configured) this machine.

Clients send their sserelay key the way their SDK sends a provider key: `Authorization:
Bearer srk-...` (openai) or `x-api-key: srk-...` (anthropic). Until the first key exists the
gateway has nobody to tell apart, so it answers loopback clients only (said at startup) and
refuses everyone else, instead of relaying the provider key's power to the network.
"""

from __future__ import annotations

import functools
import ipaddress

from starlette.requests import Request

from sserelay.gateway.errors import GatewayError
from sserelay.keys.store import ClientKey, KeyStore
from sserelay.observability.hooks import note_key

__all__ = ["authenticate", "is_loopback"]


# Where a request's answer is kept: the guard and the endpoint both ask (web/guard.py).
_ANSWER_KEY = "sserelay.authenticated"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    return _is_loopback_address(host)


@functools.lru_cache(maxsize=1024)
def _is_loopback_address(host: str) -> bool:
    # Cached: parsing the address was ~1.5% of a two-token stream's relay CPU, asked per
    # request of the same few client addresses.
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _presented_key(request: Request) -> str | None:
    # One pass over the raw headers: Starlette's `headers.get` of an absent header scans
    # them all and raises KeyError inside, and both are usually absent (a loopback caller).
    authorization: str | None = None
    api_key: str | None = None
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return api_key or None


def authenticate(request: Request, keys: KeyStore) -> ClientKey | None:
    """The caller's live key, or None for a loopback caller while no key exists.

    Raises GatewayError(401) otherwise; the message never repeats what was presented.
    A request is checked once: a second call for it (the guard's, then the endpoint's)
    returns the first call's key.
    """
    answered = request.scope.get(_ANSWER_KEY)
    if answered is not None and answered[0] is keys:
        key: ClientKey | None = answered[1]
        return key
    key = _authenticate(request, keys)
    request.scope[_ANSWER_KEY] = (keys, key)
    return key


def _authenticate(request: Request, keys: KeyStore) -> ClientKey | None:
    token = _presented_key(request)
    if token is not None:
        key = keys.authenticate(token)
        if key is not None:
            note_key(key.id)
            return key
    if not keys.has_live_keys():
        peer = request.scope.get("client")  # (host, port): `request.client` makes a tuple
        if is_loopback(peer[0] if peer else None):
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
