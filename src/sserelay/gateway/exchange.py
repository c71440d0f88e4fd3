"""How one client API is served by one provider: straight through, or translated.

An `Exchange` turns the client's request body into the upstream's, the upstream's stream
into the client's (a `StreamFilter`) and the upstream's JSON answer into the client's.
When the provider speaks the client's API the exchange is a pass-through: the request goes
as it came (after the key's policy) and the answer's bytes come back untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from sserelay.gateway.errors import GatewayError
from sserelay.gateway.named_passthrough import NamedEventFilter
from sserelay.gateway.openai_passthrough import OpenAIStreamFilter
from sserelay.gateway.relay import StreamFilter
from sserelay.keys.ledger import Usage
from sserelay.providers.base import Api, Provider
from sserelay.providers.errors import ProviderError

__all__ = ["Exchange", "PassThrough", "exchange_for", "usage_of"]

Redact = Callable[[str], str]


class Exchange(Protocol):
    upstream_api: Api

    def request(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def stream_filter(self, *, strip_usage: bool, redact: Redact) -> StreamFilter: ...
    def answer(self, raw: bytes, redact: Redact) -> tuple[bytes, Usage | None]: ...


def usage_of(api: Api, answer: Any) -> Usage | None:
    """The usage in a non-streamed answer of `api`, if it reports one."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return None
    if api in ("chat", "completions"):
        return Usage.from_openai(usage)
    return Usage.from_responses(usage)  # Responses and Anthropic both say input/output_tokens


def parse_answer(raw: bytes) -> dict[str, Any]:
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise ProviderError(
            "upstream_malformed", "The model provider's answer is not a JSON object."
        )
    return answer


class PassThrough:
    """The provider speaks the client's API: bytes go through as they are."""

    def __init__(self, api: Api) -> None:
        self.upstream_api = api

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def stream_filter(self, *, strip_usage: bool, redact: Redact) -> StreamFilter:
        if self.upstream_api in ("chat", "completions"):
            return OpenAIStreamFilter(strip_usage=strip_usage, redact=redact)
        return NamedEventFilter(self.upstream_api, redact=redact)

    def answer(self, raw: bytes, redact: Redact) -> tuple[bytes, Usage | None]:
        return raw, usage_of(self.upstream_api, parse_answer(raw))


def exchange_for(api: Api, provider: Provider) -> Exchange:
    """The way `provider` serves a request made to `api`."""
    if provider.supports(api):
        return PassThrough(api)
    raise GatewayError(
        400, f"This model cannot be used with the {api} API.", "unsupported_api", param="model"
    )
