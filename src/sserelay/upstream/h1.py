"""A small HTTP/1.1 client for upstream streams: an asyncio protocol around httptools' parser.

Why not aiohttp here (docs/decisions.md, "The hot path: body bytes pushed, not pulled"): a
relayed chunk through aiohttp wakes a reader future, resumes a task and goes back through two
async generators before it is written; here the parser's body callback hands the bytes to
whoever is attached, in the same call that read them from the socket. Measured on the
benchmark's pass-through, a relay built this way costs ~20 µs of CPU per chunk against ~47 µs
through aiohttp's `StreamReader`.

The HTTP parsing (status line, headers, chunked and Content-Length framing) is httptools',
the C parser uvicorn uses; this module only connects, writes the request, keeps idle
keep-alive connections for reuse and delivers the body: pulled (`read_chunk`) or pushed
(`attach`). A connection is reused only after its response was read to its end.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

from sserelay.speedups import Forward, Guarded

__all__ = ["Aborter", "H1Closed", "H1Error", "H1Pool", "H1Response"]

# Idle keep-alive connections kept per upstream: a burst's worth, so that the next burst
# of streams reuses them instead of connecting again (with TLS, a handshake each). At 64,
# 500 streams ending together closed 436 connections, and the next 500 opened them again.
_MAX_IDLE_PER_ORIGIN = 1024
_RELEASE_GRACE = 5.0  # seconds an answered response may take to send its last bytes
_MAX_HEADER_BYTES = 64 * 1024

Origin = tuple[str, str, int]  # scheme, host, port
OnData = Callable[[bytes], None]
OnEnd = Callable[["H1Error | None"], None]


class H1Error(Exception):
    """The connection failed, or the upstream spoke something other than HTTP/1.1."""


class H1Closed(H1Error):
    """The connection closed before the response ended (a broken or aborted body)."""


class H1Response:
    """One response: status and headers once `H1Pool.request` returns, then the body.

    Pull with `read_chunk()` (everything buffered, as one bytes; b"" at the end), or push
    with `attach(on_data, on_end)`: from then on each body piece is passed to `on_data` as
    the parser produces it, and `on_end(None)` follows the last one (`on_end(error)` when
    the connection broke first). `pause()`/`resume()` stop and restart reading the socket.
    """

    __slots__ = (
        "_base", "_body", "_buffer", "_conn", "_end_error", "_ended", "_on_data", "_on_end",
        "_waiter", "headers", "status",
    )  # fmt: skip

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        # The connection's body callback, pointed at this response's consumer: `_data`
        # (pulled) or the attached `on_data` (pushed). It counts the pieces.
        self._body = body = conn.on_body
        self._base = body.count
        body.target = self._data
        self.status = 0
        self.headers: dict[str, str] = {}  # lower-case names; a repeated header: last wins
        # A list, not a deque: it is emptied whole, and an empty deque costs ~600 bytes.
        self._buffer: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False  # the body ended, cleanly or not
        self._end_error: H1Error | None = None
        self._on_data: OnData | None = None
        self._on_end: OnEnd | None = None

    @property
    def received(self) -> int:
        """Body pieces so far: a watchdog's measure of progress."""
        return self._body.count - self._base

    @property
    def complete(self) -> bool:
        """The whole body arrived and nothing broke."""
        return self._ended and self._end_error is None

    # -- what the connection calls -------------------------------------------------------

    def _data(self, data: bytes) -> None:
        on_data = self._on_data
        if on_data is not None:
            on_data(data)
            return
        self._buffer.append(data)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _end(self, error: H1Error | None) -> None:
        if self._ended:
            return
        self._ended = True
        self._end_error = error
        on_end = self._on_end
        if on_end is not None:
            self._on_end = self._on_data = None
            self._point_body(self._data)
            on_end(error)
            return
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- reading ---------------------------------------------------------------------------

    async def read_chunk(self) -> bytes:
        """The bytes received since the last call, waiting for some; b"" at the end.

        Bytes that arrived before a connection broke are returned first; the error is
        raised by the call after them.
        """
        while not self._buffer:
            if self._ended:
                if self._end_error is not None:
                    raise self._end_error
                return b""
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            self._resume_reading()
            await waiter
        buffer = self._buffer
        chunk = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        return chunk

    async def read_body(self, limit: int) -> bytes:
        """The whole body, or at most `limit` + 1 bytes of it."""
        parts: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = await self.read_chunk()
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    def attach(self, on_data: OnData, on_end: OnEnd) -> None:
        """Push the body from now on; what was buffered goes to `on_data` first."""
        if self._buffer:
            buffered = b"".join(self._buffer)
            self._buffer.clear()
            on_data(buffered)
        if self._ended:
            on_end(self._end_error)
            return
        self._on_data, self._on_end = on_data, on_end
        self._point_body(on_data)
        self._resume_reading()

    def detach(self) -> None:
        self._on_data = self._on_end = None
        self._point_body(self._data)

    def _point_body(self, target: OnData) -> None:
        # Only while this is the connection's response: a reused connection's parser
        # belongs to the next one.
        conn = self._conn
        if conn is not None and conn.response is self:
            self._body.target = target

    def pause(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.pause()

    def resume(self) -> None:
        self._resume_reading()

    def _resume_reading(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.resume()

    # -- ending ----------------------------------------------------------------------------

    def close(self) -> None:
        """Done with the response: a connection whose body ended cleanly goes back to the
        pool; one still sending is closed (an upstream that loses its client stops
        generating)."""
        self.detach()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish(self)

    def release(self) -> None:
        """Done with the response, which has sent everything that matters: keep the
        connection if its last bytes (the chunked terminator) arrive within a few seconds."""
        self.detach()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish(self, grace=_RELEASE_GRACE)

    def abort(self, error: H1Error) -> None:
        """End the body now with `error` (a limit expired) and close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.transport.close()
        self._end(error)


class Aborter:
    """A `close()` that aborts a response, for the watchdog: the body ends with `H1Closed`."""

    __slots__ = ("_response",)

    def __init__(self, response: H1Response) -> None:
        self._response = response

    def close(self) -> None:
        self._response.abort(H1Closed("a time limit expired"))


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: one request at a time, reused while keep-alive."""

    def __init__(self, pool: H1Pool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        # The parser's body callback (it looks its callbacks up once, here): each response
        # points it at its consumer, so a body piece goes from the parser to the consumer
        # with no Python frame in between (docs/decisions.md, "The chunk path, third round").
        self.on_body = Forward()
        self.parser = httptools.HttpResponseParser(self)
        # uvloop looks `data_received` up once, when the transport is made: this instance's
        # is the parser's own `feed_data`, its errors handled by `_parse_failed`.
        self.data_received = Guarded(  # type: ignore[method-assign,assignment]
            self.parser.feed_data, httptools.HttpParserError, self._parse_failed
        )
        self.response: H1Response | None = None
        self.headers_done: asyncio.Future[None] | None = None
        self.closed = False
        self.reused = False
        self._paused = False
        self._header_bytes = 0
        self._header_name = b""
        self._grace: asyncio.TimerHandle | None = None
        self._keep = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _parse_failed(self, exc: httptools.HttpParserError) -> None:
        if self.response is None:  # bytes on an idle connection: it cannot be reused
            self.transport.close()
        elif isinstance(exc, httptools.HttpParserUpgrade):
            self._fail(H1Error("The upstream switched protocols."))
        else:
            self._fail(H1Error(f"The upstream sent malformed HTTP ({exc})."))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        response = self.response
        if response is None:
            return
        if self.headers_done is not None and not self.headers_done.done():
            self.headers_done.set_exception(H1Closed("The upstream closed the connection."))
        elif self._body_ends_at_close(response):
            response._end(None)
        else:
            response._end(H1Closed("The upstream closed the connection mid-answer."))

    def pause(self) -> None:
        if not self._paused and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    # -- httptools callbacks (and `on_body`, the Forward made in __init__) ---------------

    def on_message_begin(self) -> None:
        if self.response is None:  # bytes on an idle connection: it cannot be reused
            raise H1Error("bytes on an idle connection")  # to _parse_failed, which closes

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > _MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")
        if self.response is not None:
            self.response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        response = self.response
        if response is None:
            return
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue and other interim answers: wait for the real one
            response.headers.clear()
            self._header_bytes = 0
            return
        response.status = status
        waiter = self.headers_done
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        response = self.response
        if response is None or response.status < 200:
            return
        self._keep = self.parser.should_keep_alive()
        response._end(None)
        if response._conn is None:  # its owner already let go (release): back to the pool
            self._recycle()

    # -- the pool's side -------------------------------------------------------------------

    def start(self, request: bytes, loop: asyncio.AbstractEventLoop) -> H1Response:
        self.response = H1Response(self)
        self.headers_done = loop.create_future()
        self._header_bytes = 0
        self._keep = False
        self.transport.write(request)
        return self.response

    def finish(self, response: H1Response, *, grace: float = 0.0) -> None:
        if response is not self.response or self.closed:
            return
        if response._ended:
            self._recycle()
        elif grace > 0:
            self._grace = asyncio.get_running_loop().call_later(grace, self.transport.close)
        else:
            self.transport.close()

    def _recycle(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        response, self.response = self.response, None
        self.on_body.target = None  # nothing of that response's is called any more
        if self.closed:
            return
        if response is None or not response.complete or not self._keep:
            self.transport.close()
            return
        self.resume()
        self.pool._idle_connection(self)

    def _fail(self, error: H1Error) -> None:
        self.transport.close()
        waiter = self.headers_done
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        elif self.response is not None:
            self.response._end(error)

    @staticmethod
    def _body_ends_at_close(response: H1Response) -> bool:
        # HTTP/1.0-style bodies without Content-Length or chunking end when the server closes.
        headers = response.headers
        return "content-length" not in headers and "chunked" not in headers.get(
            "transfer-encoding", ""
        ).lower()


@functools.lru_cache(maxsize=256)
def _request_line_parts(url: str) -> tuple[Origin, str, str]:
    """(origin, Host header, request target) of `url`; remembered, as a relay asks for the
    same few URLs on every request (urlsplit and its hostname/port were ~1% of one)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise H1Error(f"Not an http(s) URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    default_port = port == (443 if scheme == "https" else 80)
    host = parts.hostname if default_port else f"{parts.hostname}:{port}"
    if ":" in parts.hostname and not default_port:
        host = f"[{parts.hostname}]:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, parts.hostname, port), host, target


class H1Pool:
    """Keep-alive connections per origin; `request` sends one request on one of them."""

    def __init__(
        self, *, connect_timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.connect_timeout = connect_timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        # https: the system's trust store unless told otherwise (certificates verified).
        self._ssl: ssl.SSLContext | None = ssl_context

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes = b""
    ) -> H1Response:
        """Send the request; return once the status and headers are in.

        Raises `H1Error` when no connection can be made or the response never starts. A
        request on a reused connection that the server had just closed is sent again, once,
        on a new connection (it never reached the server).
        """
        origin, host, target = _request_line_parts(url)
        request = _encode_request(method, target, host, headers, body)
        loop = asyncio.get_running_loop()
        for attempt in (0, 1):
            conn = self._idle_for(origin) or await self._connect(origin, loop)
            response = conn.start(request, loop)
            try:
                assert conn.headers_done is not None
                await conn.headers_done
            except H1Closed:
                if conn.reused and attempt == 0:
                    continue  # a stale keep-alive connection: try a fresh one
                raise
            except BaseException:
                conn.transport.close()
                raise
            return response
        raise H1Closed("The upstream closed the connection.")  # pragma: no cover

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.transport.close()
        self._idle.clear()

    # -- connections -----------------------------------------------------------------------

    def _idle_for(self, origin: Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        while conns:
            conn = conns.pop()
            if not conn.closed and not conn.transport.is_closing():
                conn.reused = True
                return conn
        return None

    async def _connect(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin), host, port, ssl=context,
                )
        except TimeoutError:
            raise H1Error("Connecting to the upstream timed out.") from None
        except (OSError, ssl.SSLError) as exc:
            raise H1Error(f"Could not connect to the upstream: {exc.strerror or exc}") from None
        return conn

    def _idle_connection(self, conn: _Connection) -> None:
        conns = self._idle.setdefault(conn.origin, [])
        if len(conns) >= _MAX_IDLE_PER_ORIGIN:
            conn.transport.close()
        else:
            conns.append(conn)

    def _forget(self, conn: _Connection) -> None:
        conns = self._idle.get(conn.origin)
        if conns and conn in conns:
            conns.remove(conn)


def _encode_request(
    method: str, target: str, host: str, headers: dict[str, str], body: bytes
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            continue
        if any(c in name or c in value for c in "\r\n\0") or ":" in name:
            raise H1Error(f"Header {name!r} has a line break or NUL in its name or value.")
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body
