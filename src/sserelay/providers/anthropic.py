"""Anthropic's Messages API as an upstream.

Documented by Anthropic ("Messages", "Streaming Messages"): `POST {base}/v1/messages`, the
key in `x-api-key`, the API version in `anthropic-version`. Only the Messages API is spoken
natively; the gateway translates chat completions (and responses) to and from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sserelay.providers.base import Api
from sserelay.providers.http import HttpProvider

__all__ = ["ANTHROPIC_BASE_URL", "ANTHROPIC_VERSION", "AnthropicProvider"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider(HttpProvider):
    """`base_url` is the API root without the version, as the anthropic SDK's is."""

    kind = "anthropic"
    apis = frozenset({"messages"})

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        *,
        version: str = ANTHROPIC_VERSION,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 300.0,
    ) -> None:
        super().__init__(
            name, base_url, api_key, headers=headers,
            connect_timeout=connect_timeout, read_timeout=read_timeout,
        )
        self._auth = {"anthropic-version": version}
        if api_key:
            self._auth["x-api-key"] = api_key

    def _url(self, api: Api, model: str) -> str:
        return self.base_url + "/v1/messages"

    def _auth_headers(self) -> dict[str, str]:
        return self._auth

    def _prepare(self, api: Api, model: str, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        body = {**body, "model": model}
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return body

    async def list_models(self) -> list[str]:
        listing = await self._get_json(self.base_url + "/v1/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            return []
        return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
