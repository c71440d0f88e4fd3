"""Streaming requests to an OpenAI-compatible upstream, on sserelay's HTTP/1.1 client.

The client (`upstream/h1.py`) is the gateway's too: httptools' parser, keep-alive pooling
(docs/decisions.md, "The hot path: body bytes pushed, not pulled").
Anything that is not a complete, well-formed event stream is raised as `UpstreamError`:
a 4xx/5xx answer, a content type other than text/event-stream, and a body that ends
before the provider's end marker. A relay that treats those as a normal end silently
truncates answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any

import orjson

from sserelay.codec import ServerSentEvent, SSEDecodeError, SSEDecoder
from sserelay.redaction import redact
from sserelay.upstream import failures
from sserelay.upstream.errors import UpstreamError
from sserelay.upstream.h1 import Aborter, H1Error, H1Pool, H1Response
from sserelay.upstream.watchdog import Timeouts, Watchdog


class OpenAIUpstream:
    """An OpenAI-compatible server: OpenAI itself, vLLM, Ollama, llama.cpp's server..."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeouts: Timeouts | None = None,
        name: str = "openai",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._api_key = api_key
        self.timeouts = timeouts or Timeouts()
        self._pool: H1Pool | None = None
        self._headers: dict[str, str] = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @property
    def pool(self) -> H1Pool:
        # No limit on connections: each relayed stream holds one upstream connection for its
        # whole life, and a limit would queue streams invisibly instead of failing them.
        if self._pool is None:
            self._pool = H1Pool(connect_timeout=self.timeouts.connect)
        return self._pool

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def redact(self, text: str) -> str:
        return redact(text, self._api_key)

    def stream(self, path: str, body: Mapping[str, Any]) -> UpstreamStream:
        """POST `body` to `path` (e.g. "/chat/completions") and stream the answer's events."""
        return UpstreamStream(self, path, body)


class UpstreamStream:
    """One streaming upstream request; use as `async with upstream.stream(...) as s`."""

    def __init__(self, upstream: OpenAIUpstream, path: str, body: Mapping[str, Any]) -> None:
        self._upstream = upstream
        self._path = path
        self._body = orjson.dumps(body)
        self._response: H1Response | None = None

    async def __aenter__(self) -> UpstreamStream:
        up = self._upstream
        headers = {**up._headers, "Content-Type": "application/json"}
        try:
            async with asyncio.timeout(up.timeouts.first_token):
                response = await up.pool.request(
                    "POST", up.base_url + self._path, headers, self._body
                )
        except TimeoutError:
            raise failures.not_answering() from None
        except H1Error:
            raise failures.unreachable() from None
        self._response = response
        if response.status >= 400:
            await self._raise_for_status(response)
        ctype = response.headers.get("content-type", "")
        if not ctype.lower().startswith("text/event-stream"):
            response.close()
            raise failures.bad_content_type()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            # If the body was not read to the end the connection is closed, so the upstream
            # stops generating (and billing); else it goes back to the pool.
            self._response.close()

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        """The upstream's events in order; raises `UpstreamError` if the body breaks off."""
        assert self._response is not None, "use `async with` first"
        decoder = SSEDecoder()
        response = self._response
        read = response.read_chunk
        watchdog = Watchdog(Aborter(response), self._upstream.timeouts)
        try:
            # What arrived before a break comes first; the break is raised by the next read.
            while chunk := await read():
                watchdog.reads += 1
                for event in decoder.feed(chunk):
                    yield event
        except H1Error:
            if watchdog.expired:
                raise failures.timeout_error(watchdog.expired) from None
            raise failures.broken_off() from None
        except SSEDecodeError as exc:
            raise failures.malformed(str(exc)) from None
        finally:
            watchdog.stop()
        if watchdog.expired:
            raise failures.timeout_error(watchdog.expired)
        decoder.close()

    def push(
        self,
        on_event: Callable[[ServerSentEvent], bool],
        on_end: Callable[[UpstreamError | None], None],
        on_data_line: Callable[[bytes], bool | None] | None = None,
    ) -> None:
        """`events()`, pushed: `on_event` is called with each event in the call that read it
        (return False to stop), then `on_end(None)` when the body ended cleanly, or
        `on_end(error)` when it broke, timed out or was not a valid event stream.

        `on_data_line`, if given, is offered the data of each read that is one event of one
        `data:` line, undecoded (`SSEDecoder.take_data_line`): True or False when it took
        it (False: stop), None to have it decoded and passed to `on_event` as usual."""
        assert self._response is not None, "use `async with` first"
        response = self._response
        decoder = SSEDecoder()
        watchdog = Watchdog(Aborter(response), self._upstream.timeouts)
        feed = decoder.feed

        def stop() -> None:
            watchdog.stop()
            response.detach()

        take = decoder.take_data_line if on_data_line is not None else None

        def on_data(chunk: bytes) -> None:
            watchdog.reads += 1
            if take is not None and (line := take(chunk)) is not None:
                went_on = on_data_line(line)  # type: ignore[misc]
                if went_on is not None:
                    if not went_on:
                        stop()
                    return
            try:
                for event in feed(chunk):
                    if not on_event(event):
                        stop()
                        return
            except SSEDecodeError as exc:
                stop()
                on_end(failures.malformed(str(exc)))

        def body_end(error: H1Error | None) -> None:
            stop()
            if error is not None:
                expired = watchdog.expired
                on_end(failures.timeout_error(expired) if expired else failures.broken_off())
            else:
                decoder.close()
                on_end(None)

        response.attach(on_data, body_end)

    async def _raise_for_status(self, response: H1Response) -> None:
        try:
            async with asyncio.timeout(self._upstream.timeouts.first_token):
                raw = await response.read_body(failures.ERROR_BODY_LIMIT)
        except (TimeoutError, H1Error):
            raw = b""
        finally:
            response.close()
        raise failures.status_error(
            response.status, raw[: failures.ERROR_BODY_LIMIT], response.headers.get("retry-after"),
            self._upstream.redact,
        )
