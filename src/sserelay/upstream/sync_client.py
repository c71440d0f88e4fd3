"""Blocking streaming requests to an OpenAI-compatible upstream, for WSGI servers.

The WSGI integrations (Flask, Django under runserver or gunicorn) hold one thread or greenlet
per stream, so they read the upstream with a blocking client: `http.client` from the standard
library, chosen by measurement and for its control over timeouts (docs/decisions.md, "The
sync upstream client: http.client"). It works unchanged under gevent's monkey-patching.

Everything around the bytes is shared with the async client (`openai_client`): the SSE
decoder, the limits (`Timeouts`) and every failure's code and words (`failures`). One
connection per stream and no pool: a stream holds its connection for its whole life, and
closing it is how the upstream learns to stop generating.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson

from sserelay.codec import ServerSentEvent, SSEDecodeError, SSEDecoder
from sserelay.redaction import redact
from sserelay.settings import Settings
from sserelay.upstream import failures
from sserelay.upstream.watchdog import Timeouts

__all__ = ["SyncOpenAIUpstream", "SyncUpstreamStream"]

_READ_SIZE = 64 * 1024


class SyncOpenAIUpstream:
    """`OpenAIUpstream`'s blocking twin: same base URL, key handling, limits and errors."""

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
        self.timeouts = timeouts or Timeouts()
        self._api_key = api_key
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"the upstream base URL must be http(s)://host[:port][/path]: {url}")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port
        self._prefix = url.path
        self._tls = ssl.create_default_context() if self._https else None
        self._headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_settings(cls, settings: Settings) -> SyncOpenAIUpstream:
        return cls(
            settings.openai_base_url,
            settings.openai_api_key,
            timeouts=Timeouts(
                connect=settings.connect_timeout,
                first_token=settings.first_token_timeout,
                idle=settings.idle_timeout,
                total=settings.max_duration,
            ),
        )

    def redact(self, text: str) -> str:
        return redact(text, self._api_key)

    def stream(self, path: str, body: Mapping[str, Any]) -> SyncUpstreamStream:
        """POST `body` to `path` (e.g. "/chat/completions"); use as `with ... as s`."""
        return SyncUpstreamStream(self, path, body)

    def _connection(self) -> http.client.HTTPConnection:
        timeout = self.timeouts.connect
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._tls
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)


class SyncUpstreamStream:
    """One streaming upstream request: `open()` (or `with`), `events()`, `close()`."""

    def __init__(self, upstream: SyncOpenAIUpstream, path: str, body: Mapping[str, Any]) -> None:
        self._upstream = upstream
        self._path = upstream._prefix + path
        self._body = orjson.dumps(body)
        self._conn: http.client.HTTPConnection | None = None
        # Kept apart from the connection: http.client hands the socket over to the response
        # (and drops it from the connection) when the upstream says `Connection: close`.
        self._sock: socket.socket | None = None
        self._response: http.client.HTTPResponse | None = None

    def open(self) -> SyncUpstreamStream:
        """Send the request and check the answer's status and type; `UpstreamError` if bad."""
        up = self._upstream
        conn = self._conn = up._connection()
        try:
            conn.connect()
            self._sock = conn.sock
            # Connected within the connect limit; the status line and headers get the
            # first-token limit, as the async client's request does.
            self._sock.settimeout(up.timeouts.first_token)
            conn.request("POST", self._path, body=self._body, headers=up._headers)
            response = self._response = conn.getresponse()
        except TimeoutError:
            self.close()
            raise failures.not_answering() from None
        except (OSError, http.client.HTTPException):
            self.close()
            raise failures.unreachable() from None
        if response.status >= 400:
            try:
                raw = response.read(failures.ERROR_BODY_LIMIT)
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                self.close()
            raise failures.status_error(
                response.status, raw, response.getheader("Retry-After"), up.redact
            )
        ctype = response.getheader("Content-Type") or ""
        if not ctype.lower().startswith("text/event-stream"):
            self.close()
            raise failures.bad_content_type()
        return self

    def events(self) -> Iterator[ServerSentEvent]:
        """The upstream's events in order; `UpstreamError` if the body breaks off or a limit
        (first token, idle, total) expires. Every read is bounded by the limit in force."""
        sock, response = self._sock, self._response
        assert sock is not None and response is not None, "open() first"
        limits = self._upstream.timeouts
        decoder = SSEDecoder()
        deadline = time.monotonic() + limits.total
        limit: failures.Limit = "first_token"
        wait = limits.first_token
        while True:
            left = deadline - time.monotonic()
            if left <= wait:
                limit, wait = "total", left
            if wait <= 0:
                raise failures.timeout_error("total")
            if wait != sock.gettimeout():
                # settimeout() costs a system call; mid-stream the idle limit rarely changes.
                sock.settimeout(wait)
            try:
                chunk = response.read1(_READ_SIZE)
            except TimeoutError:
                # The socket is unusable after a timeout; close() drops it.
                raise failures.timeout_error(limit) from None
            except (OSError, http.client.HTTPException):
                # IncompleteRead: the chunked body ended before its last chunk.
                raise failures.broken_off() from None
            if not chunk:
                break
            limit, wait = "idle", limits.idle
            try:
                yield from decoder.feed(chunk)
            except SSEDecodeError as exc:
                raise failures.malformed(str(exc)) from None
        decoder.close()

    def close(self) -> None:
        """Close the connection: if the body was not read to its end, the upstream sees the
        connection closed and stops generating (and billing). Idempotent."""
        if self._response is not None:
            self._response.close()
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> SyncUpstreamStream:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
