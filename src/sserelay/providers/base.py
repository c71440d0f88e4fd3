"""The provider interface: one upstream server, whatever wire format it speaks.

A provider knows how to reach its server (URL, credentials, headers) and which APIs it speaks
natively; it knows nothing of clients, keys or translation. The gateway asks it to `send` a
request body in one of those APIs and gets back an open `ProviderReply` (a 2xx answer whose
body has not been read) or a `ProviderError`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from sserelay.redaction import redact

if TYPE_CHECKING:
    from sserelay.providers.errors import ProviderError

__all__ = ["API_PATHS", "Api", "Provider", "ProviderReply"]

Api = Literal["chat", "completions", "responses", "messages"]
"""OpenAI Chat Completions, legacy Completions, Responses; Anthropic Messages."""

API_PATHS: Mapping[Api, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "responses": "/responses",
    "messages": "/messages",
}


class ProviderReply(abc.ABC):
    """An upstream's 2xx answer, body not yet read. Read it with `read_chunk` (a stream) or
    `read_body` (JSON), then `release()` it; `close()` it to abort, which tells the upstream
    to stop generating (and billing)."""

    @abc.abstractmethod
    async def read_chunk(self) -> bytes:
        """The next bytes of the body as the network delivered them; b"" at the end.

        Raises `ProviderError` (ending "truncated") if the connection breaks first.
        """

    @abc.abstractmethod
    async def read_body(self) -> bytes:
        """The whole body (bounded); raises `ProviderError` if it is too big or breaks off."""

    @abc.abstractmethod
    def close(self) -> None:
        """Abort: drop the connection unless the body was read to its end. Idempotent."""

    def release(self) -> None:
        """The answer is complete: keep the connection if the protocol's last bytes come."""
        self.close()

    def attach(
        self, on_data: Callable[[bytes], None], on_end: Callable[[ProviderError | None], None]
    ) -> None:
        """Push the rest of the body: `on_data` per network read, then `on_end(None)`, or
        `on_end(error)` when it broke. Replies that cannot push raise NotImplementedError."""
        raise NotImplementedError

    def detach(self) -> None:
        """Stop pushing; what arrives next is buffered for `read_chunk`."""
        return None  # a reply that cannot push has nothing to stop

    def pause(self) -> None:
        """Stop reading the network until `resume()` (the client is not keeping up)."""
        return None  # a reply that cannot push is only read when asked

    def resume(self) -> None:
        """Read the network again."""
        return None


class Provider(abc.ABC):
    """One configured upstream. `name` is the operator's name for it (config, logs)."""

    name: str
    kind: str
    apis: frozenset[Api]

    def __init__(self, name: str, api_key: str | None) -> None:
        self.name = name
        self._api_key = api_key

    def supports(self, api: Api) -> bool:
        return api in self.apis

    def redact(self, text: str) -> str:
        """`text` from this upstream without its key, URLs or addresses: safe for clients."""
        return redact(text, self._api_key)

    @abc.abstractmethod
    async def send(
        self, api: Api, model: str, body: dict[str, Any], *, stream: bool
    ) -> ProviderReply:
        """POST `body` (already in `api`'s format) for upstream model `model`.

        Returns once the upstream answered 2xx with the expected content type (an event
        stream when `stream`); raises `ProviderError` otherwise.
        """

    @abc.abstractmethod
    async def list_models(self) -> list[str]:
        """The model ids the upstream itself lists (used for wildcard routes)."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook: not every provider holds I/O)
        """Release connections; the provider is not used afterwards."""
