"""How `authenticate` reads the presented key, and that it answers once per request."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from sserelay.gateway.auth import authenticate
from sserelay.keys.store import ClientKey


class _Keys:
    """A key store with one live key, `srk-good`, that counts its lookups."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.key = ClientKey(id="k1", name="one", hint="srk-...good")

    def authenticate(self, token: str) -> ClientKey | None:
        self.asked.append(token)
        return self.key if token == "srk-good" else None

    def has_live_keys(self) -> bool:
        return True


def _request(*headers: tuple[bytes, bytes]) -> Request:
    scope: dict[str, Any] = {"type": "http", "headers": list(headers),
                             "client": ("192.0.2.1", 1)}
    return Request(scope)


@pytest.mark.parametrize(("headers", "presented"), [
    ([(b"authorization", b"Bearer srk-good"), (b"x-api-key", b"srk-other")], "srk-good"),
    ([(b"authorization", b"Basic abc"), (b"x-api-key", b"srk-good")], "srk-good"),
    ([(b"x-api-key", b"srk-good")], "srk-good"),
    ([(b"authorization", b"Bearer srk-good"), (b"authorization", b"Bearer srk-2")], "srk-good"),
])
def test_bearer_token_comes_first_then_x_api_key(
    headers: list[tuple[bytes, bytes]], presented: str
) -> None:
    """A bearer Authorization header is the key (its first value); otherwise x-api-key."""
    keys = _Keys()
    assert authenticate(_request(*headers), keys) is keys.key  # type: ignore[arg-type]
    assert keys.asked == [presented]


def test_a_request_is_looked_up_once_per_key_store() -> None:
    """The guard's and the endpoint's calls share one lookup; another store asks anew."""
    request = _request((b"x-api-key", b"srk-good"))
    first, second = _Keys(), _Keys()
    assert authenticate(request, first) is first.key  # type: ignore[arg-type]
    assert authenticate(request, first) is first.key  # type: ignore[arg-type]
    assert authenticate(request, second) is second.key  # type: ignore[arg-type]
    assert (first.asked, second.asked) == (["srk-good"], ["srk-good"])
