"""How one client API is served by one provider: straight through, or translated.

An `Exchange` turns the client's request body into the upstream's, the upstream's stream
into the client's (a `StreamFilter`) and the upstream's JSON answer into the client's.
When the provider speaks the client's API the exchange is a pass-through: the request goes
as it came (after the key's policy) and the answer's bytes come back untouched. Otherwise
both sides meet at the chat completions pivot (translation/pipeline.py): the client's
format to chat and back, chat to the upstream's format and back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from sserelay.gateway.errors import GatewayError
from sserelay.gateway.named_passthrough import NamedEventFilter
from sserelay.gateway.openai_passthrough import OpenAIStreamFilter
from sserelay.gateway.relay import StreamFilter
from sserelay.keys.ledger import Usage
from sserelay.providers.base import Api, Provider
from sserelay.providers.errors import ProviderError
from sserelay.translation import anthropic_client, anthropic_upstream, responses_client
from sserelay.translation.chat_stream import ChatChunkReader, ChatChunkWriter
from sserelay.translation.pipeline import ChunkReader, ChunkWriter, TranslatingFilter

__all__ = ["Exchange", "PassThrough", "Translated", "exchange_for", "usage_of"]

Redact = Callable[[str], str]
Body = dict[str, Any]


class Exchange(Protocol):
    upstream_api: Api

    def request(self, body: Body) -> Body: ...
    def stream_filter(self, request: Body, *, strip_usage: bool, redact: Redact
                      ) -> StreamFilter: ...
    def answer(self, raw: bytes, request: Body) -> tuple[bytes, Usage | None]: ...


def usage_of(api: Api, answer: Any) -> Usage | None:
    """The usage in a non-streamed answer of `api`, if it reports one."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return None
    if api in ("chat", "completions"):
        return Usage.from_openai(usage)
    return Usage.from_responses(usage)  # Responses and Anthropic both say input/output_tokens


def parse_answer(raw: bytes) -> Body:
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

    def request(self, body: Body) -> Body:
        return body

    def stream_filter(self, request: Body, *, strip_usage: bool, redact: Redact
                      ) -> StreamFilter:
        if self.upstream_api in ("chat", "completions"):
            return OpenAIStreamFilter(strip_usage=strip_usage, redact=redact)
        return NamedEventFilter(self.upstream_api, redact=redact)

    def answer(self, raw: bytes, request: Body) -> tuple[bytes, Usage | None]:
        return raw, usage_of(self.upstream_api, parse_answer(raw))


@dataclass(frozen=True, slots=True)
class _ClientSide:
    """A client API in terms of the chat pivot."""

    to_chat: Callable[[Body], Body]
    writer: Callable[[Body, bool], ChunkWriter]
    from_chat_answer: Callable[[Body, Body], Body]


@dataclass(frozen=True, slots=True)
class _UpstreamSide:
    """An upstream API in terms of the chat pivot."""

    api: Api
    from_chat: Callable[[Body], Body]
    reader: Callable[[Redact], ChunkReader]
    to_chat_answer: Callable[[Body], Body]


def _same(body: Body) -> Body:
    return body


_CLIENTS: dict[Api, _ClientSide] = {
    "chat": _ClientSide(
        _same, lambda request, usage: ChatChunkWriter(include_usage=usage),
        lambda answer, request: answer),
    "messages": _ClientSide(
        anthropic_client.messages_to_chat, lambda request, usage: anthropic_client.MessagesWriter(),
        lambda answer, request: anthropic_client.chat_completion_to_message(answer)),
    "responses": _ClientSide(
        responses_client.responses_to_chat,
        lambda request, usage: responses_client.ResponsesWriter(request),
        responses_client.chat_completion_to_response),
}
_UPSTREAMS: dict[Api, _UpstreamSide] = {
    "chat": _UpstreamSide("chat", _same, ChatChunkReader, _same),
    "messages": _UpstreamSide(
        "messages", anthropic_upstream.chat_to_messages, anthropic_upstream.AnthropicChunkReader,
        anthropic_upstream.message_to_chat_completion),
}


class Translated:
    """The provider speaks another API: both sides meet at chat completions."""

    def __init__(self, client: _ClientSide, upstream: _UpstreamSide) -> None:
        self._client = client
        self._upstream = upstream
        self.upstream_api = upstream.api

    def request(self, body: Body) -> Body:
        return self._upstream.from_chat(self._client.to_chat(body))

    def stream_filter(self, request: Body, *, strip_usage: bool, redact: Redact
                      ) -> StreamFilter:
        return TranslatingFilter(self._upstream.reader(redact),
                                 self._client.writer(request, not strip_usage))

    def answer(self, raw: bytes, request: Body) -> tuple[bytes, Usage | None]:
        completion = self._upstream.to_chat_answer(parse_answer(raw))
        usage = usage_of("chat", completion)
        return orjson.dumps(self._client.from_chat_answer(completion, request)), usage


def exchange_for(api: Api, provider: Provider) -> Exchange:
    """The way `provider` serves a request made to `api`."""
    if provider.supports(api):
        return PassThrough(api)
    pivots: tuple[Api, ...] = ("chat", "messages")
    upstream_api = next((a for a in pivots if provider.supports(a)), None)
    if api in _CLIENTS and upstream_api is not None:
        return Translated(_CLIENTS[api], _UPSTREAMS[upstream_api])
    raise GatewayError(
        400, f"This model cannot be used with the {api} API.", "unsupported_api", param="model"
    )
