"""The article's endpoints for other web frameworks, with no framework in sight.

The Flask and Django adapters hand over plain values (the query's prompt, the body's type,
length and a read function, the Last-Event-ID) and get back a `Reply`: a status, headers and
a body that is bytes or a stream. Everything else is sserelay's own code, the same the ASGI
endpoints run: request rules and the upstream request (`web.article`), text extraction
(`relay.openai_text`), the wire format (`relay.article_format`), error bodies (`web.errors`).

Blocking (WSGI) streams read the upstream with `SyncOpenAIUpstream`; under ASGI, Django
streams on the async core (`OpenAIUpstream` and `web.article.article_payloads`). There is no
stream log here, so there is no resume: a request with Last-Event-ID gets 204, which stops
EventSource, never a second completion (docs/integrations.md, "What a framework cannot do").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from importlib import resources

from sserelay.codec import DONE
from sserelay.relay.article_format import error_event, text_events
from sserelay.relay.generation import Outcome
from sserelay.relay.openai_text import Kind, iter_text_deltas
from sserelay.settings import Settings
from sserelay.streams import format_event_id, new_stream_id
from sserelay.upstream.errors import UpstreamError
from sserelay.upstream.openai_client import OpenAIUpstream
from sserelay.upstream.sync_client import SyncOpenAIUpstream, SyncUpstreamStream
from sserelay.web.article import (
    article_payloads,
    body_too_large,
    check_json_headers,
    messages_from_body,
    parse_json_object,
    prompt_messages,
    upstream_request,
)
from sserelay.web.errors import RequestError, error_response
from sserelay.web.event_stream import SSE_HEADERS

__all__ = [
    "ArticleRelay",
    "ArticleStream",
    "Call",
    "Reply",
    "client_js",
    "page_html",
    "request_error_reply",
    "upstream_error_reply",
]

Headers = list[tuple[str, str]]
_SSE_HEADERS: Headers = [(k.decode(), v.decode()) for k, v in SSE_HEADERS]
_STATIC = resources.files("sserelay.web") / "static"


@dataclass(frozen=True, slots=True)
class Call:
    """A valid request for a completion, not yet sent upstream."""

    kind: Kind
    messages: list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: `body` is bytes, a blocking `ArticleStream`, or an async iterator."""

    status: int
    headers: Headers
    body: bytes | ArticleStream | AsyncIterator[bytes]


class ArticleRelay:
    """The article's three endpoints for one app, configured from `Settings`.

    `prepare_get`/`prepare_post` apply the request rules and give a `Call`, or the `Reply` to
    send instead (a 4xx in words, or 204 for a reconnect). `respond` opens the upstream with the
    blocking client; `respond_async` with the async one (`upstream/h1.py`). Opening before
    answering lets a failure before the first byte keep its real HTTP status.
    """

    def __init__(
        self, settings: Settings | None = None, *, upstream: SyncOpenAIUpstream | None = None
    ) -> None:
        self.settings = settings or Settings.from_env()
        if self.settings.use_local_model and upstream is None:
            # `sserelay serve` would start its local model here; a framework's worker
            # processes must not each start one.
            raise ValueError(
                "sserelay's integrations need an upstream: set OPENAI_API_KEY (for OpenAI) "
                "or OPENAI_BASE_URL (any OpenAI-compatible server), or pass settings"
            )
        self.upstream = upstream or SyncOpenAIUpstream.from_settings(self.settings)
        self._async_upstream: OpenAIUpstream | None = None

    def prepare_get(
        self, kind: Kind, prompt: str | None, last_event_id: str | None
    ) -> Call | Reply:
        """GET /completion or /completionChat with `?prompt=`."""
        if last_event_id:
            return Reply(204, [], b"")
        try:
            return Call(kind, prompt_messages(prompt, self.settings))
        except RequestError as exc:
            return request_error_reply(exc)

    def prepare_post(
        self,
        content_type: str,
        content_length: str | None,
        read: Callable[[int], bytes],
        last_event_id: str | None,
    ) -> Call | Reply:
        """POST /completions/chat; `read(n)` returns up to n more bytes of the body, b"" at
        its end."""
        if last_event_id:
            return Reply(204, [], b"")
        limit = self.settings.max_body_bytes
        try:
            check_json_headers(content_type, content_length, limit)
            raw = bytearray()
            while part := read(limit + 1 - len(raw)):
                raw += part
                if len(raw) > limit:
                    raise body_too_large(limit)
            body = parse_json_object(raw)
            return Call("chat", messages_from_body(body, self.settings))
        except RequestError as exc:
            return request_error_reply(exc)

    def respond(self, call: Call) -> Reply:
        """Open the upstream (blocking) and answer with the stream, or with its early failure."""
        stream = self.upstream.stream(*upstream_request(call.kind, call.messages, self.settings))
        try:
            stream.open()
        except UpstreamError as exc:
            return upstream_error_reply(exc)
        stream_id = new_stream_id()
        body = ArticleStream(stream, call.kind, self.upstream.redact, stream_id)
        return Reply(200, _stream_headers(stream_id), body)

    async def respond_async(self, call: Call) -> Reply:
        """`respond` on the async core: the async upstream client and the ASGI endpoints' payloads.
        Run it on the server's event loop (the connection pool belongs to that loop)."""
        upstream = self._async_upstream
        if upstream is None:
            upstream = self._async_upstream = OpenAIUpstream(
                self.upstream.base_url,
                self.settings.openai_api_key,
                timeouts=self.upstream.timeouts,
            )
        stream = upstream.stream(*upstream_request(call.kind, call.messages, self.settings))
        try:
            await stream.__aenter__()
        except UpstreamError as exc:
            return upstream_error_reply(exc)
        stream_id = new_stream_id()
        payloads = article_payloads(stream, call.kind, upstream, Outcome())
        return Reply(200, _stream_headers(stream_id), _numbered_async(payloads, stream_id))

    async def aclose(self) -> None:
        if self._async_upstream is not None:
            await self._async_upstream.aclose()


class ArticleStream:
    """A WSGI response body: the article's events, numbered `id: <stream>:<seq>`.

    WSGI servers call `close()` when the body ends or the client is found gone (a write
    failed), and that closes the upstream connection, even if iteration never started.
    """

    def __init__(
        self,
        stream: SyncUpstreamStream,
        kind: Kind,
        redact: Callable[[str], str],
        stream_id: str,
    ) -> None:
        self._stream = stream
        self._payloads = _numbered(_article_payloads(stream, kind, redact), stream_id)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._payloads)

    def close(self) -> None:
        self._payloads.close()
        self._stream.close()


def _article_payloads(
    stream: SyncUpstreamStream, kind: Kind, redact: Callable[[str], str]
) -> Iterator[bytes]:
    """`web.article.article_payloads`, blocking: text as data, a typed error ending, [DONE]."""
    try:
        for text in iter_text_deltas(stream.events(), kind, redact):
            yield from text_events(text)
    except UpstreamError as exc:
        yield error_event(exc)
    finally:
        stream.close()
    yield DONE


def _numbered(payloads: Iterator[bytes], stream_id: str) -> Generator[bytes, None, None]:
    # Ids make a reconnecting EventSource send Last-Event-ID, which gets 204: without them a
    # page that does not close on [DONE] would silently ask for a second completion.
    for seq, payload in enumerate(payloads, 1):
        yield _with_id(payload, stream_id, seq)


async def _numbered_async(payloads: AsyncIterator[bytes], stream_id: str) -> AsyncIterator[bytes]:
    seq = 0
    try:
        async for payload in payloads:
            seq += 1
            yield _with_id(payload, stream_id, seq)
    finally:
        aclose = getattr(payloads, "aclose", None)
        if aclose is not None:
            await aclose()


def _with_id(payload: bytes, stream_id: str, seq: int) -> bytes:
    return b"id: %s\n%s" % (format_event_id(stream_id, seq).encode(), payload)


def _stream_headers(stream_id: str) -> Headers:
    return [*_SSE_HEADERS, ("x-sserelay-stream", stream_id)]


def request_error_reply(exc: RequestError) -> Reply:
    return _error_reply(exc.status, exc.message, exc.code)


def upstream_error_reply(exc: UpstreamError) -> Reply:
    return _error_reply(exc.status, exc.message, exc.code, exc.retry_after)


def _error_reply(status: int, message: str, code: str, retry_after: float | None = None) -> Reply:
    # The ASGI app's own error body (OpenAI-shaped, in words), rendered once and handed over.
    rendered = error_response(status, message, code, retry_after=retry_after)
    headers = [(k, v) for k, v in rendered.headers.items() if k != "content-length"]
    return Reply(status, headers, bytes(rendered.body))


def page_html() -> bytes:
    """The article's page (a prompt box, the answer as text); it calls the endpoints and
    loads /static/sserelay.js at the site's root."""
    return (_STATIC / "index.html").read_bytes()


def client_js() -> bytes:
    """sserelay.js, the page's client library (an ES module)."""
    return (_STATIC / "sserelay.js").read_bytes()
