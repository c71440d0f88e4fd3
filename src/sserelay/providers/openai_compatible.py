"""OpenAI and every server that speaks its API: vLLM, Ollama, llama.cpp's server, the
embedded SmolLM2, OpenRouter, ..."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sserelay.providers.base import API_PATHS, Api
from sserelay.providers.http import HttpProvider

__all__ = ["OpenAICompatibleProvider", "prefer_max_tokens_param"]

MaxTokensParam = str  # "max_tokens" or "max_completion_tokens"


class OpenAICompatibleProvider(HttpProvider):
    """`base_url` ends in the API version, as the openai SDK's does: `.../v1`.

    `responses`: the server implements `/responses` (OpenAI does; llama.cpp and most others
    do not, and the gateway then translates from chat completions). `stream_usage`: the
    server accepts `stream_options.include_usage` (a few old ones reject unknown fields).
    `max_tokens_param`: which spelling of the output cap the server honours for chat; OpenAI's
    reasoning models reject `max_tokens`, llama.cpp ignores `max_completion_tokens`.
    """

    kind = "openai"

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        *,
        responses: bool = False,
        stream_usage: bool = True,
        max_tokens_param: MaxTokensParam = "max_tokens",
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 300.0,
    ) -> None:
        super().__init__(
            name, base_url, api_key, headers=headers,
            connect_timeout=connect_timeout, read_timeout=read_timeout,
        )
        self.apis = frozenset({"chat", "completions", *(("responses",) if responses else ())})
        self.stream_usage = stream_usage
        self.max_tokens_param = max_tokens_param
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _url(self, api: Api, model: str) -> str:
        return self.base_url + API_PATHS[api]

    def _auth_headers(self) -> dict[str, str]:
        return self._auth

    def _prepare(self, api: Api, model: str, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        body = {**body, "model": model, "stream": stream}
        if not stream:
            body.pop("stream_options", None)
        elif api != "responses" and self.stream_usage:
            # Always ask for the usage chunk: it is how sserelay records tokens per key.
            # The gateway strips it again for clients that did not ask (docs/gateway.md).
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}), "include_usage": True
            }
        if api == "chat":
            prefer_max_tokens_param(body, self.max_tokens_param)
        return body

    async def list_models(self) -> list[str]:
        listing = await self._get_json(self.base_url + "/models")
        return _model_ids(listing)


def prefer_max_tokens_param(body: dict[str, Any], param: MaxTokensParam) -> None:
    """Spell the chat output cap the way the upstream honours it, keeping the lower value."""
    other = "max_tokens" if param == "max_completion_tokens" else "max_completion_tokens"
    if other in body and param not in body:
        body[param] = body.pop(other)


def _model_ids(listing: Any) -> list[str]:
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        return []
    return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
