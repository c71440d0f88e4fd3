"""sserelay's HTTP/1.1 client against real servers on loopback that answer with raw bytes.

Each server is an `asyncio.start_server` that writes exactly the bytes a test gives it, so
framing the usual servers never produce (close-delimited bodies, interim answers, a
connection dropped mid-chunk, garbage) is covered too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from sserelay.upstream.h1 import H1Closed, H1Error, H1Pool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


class Server:
    """A loopback server running `handler` per connection; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"


def _chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def run_on_uvloop(coro: Awaitable[None]) -> None:
    # The server's loop: uvloop looks a protocol's `data_received` up once, when the
    # transport is made, so the client's reads take a different way than under asyncio's.
    uvloop.run(coro)  # type: ignore[arg-type]


@pytest.mark.parametrize("runner", [run, run_on_uvloop], ids=["asyncio", "uvloop"])
def test_body_pieces_are_pushed_as_the_server_flushes_them_then_the_end(
    runner: Callable[[Awaitable[None]], None],
) -> None:
    events = [b"data: {\"a\":1}\n\n", b"data: {\"b\":2}\n\n", b"data: [DONE]\n\n"]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_STREAM_HEAD)
        for event in events:
            writer.write(b"%x\r\n%b\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()  # keep the connection open until the client closes it

    async def main() -> None:
        async with Server(handler) as server:
            pool = H1Pool()
            response = await pool.request("POST", server.url, {"X-Test": "1"}, b"{}")
            assert response.status == 200
            assert response.headers["content-type"] == "text/event-stream"
            got: list[bytes] = []
            ended: asyncio.Future[H1Error | None] = asyncio.get_running_loop().create_future()
            response.attach(got.append, ended.set_result)
            assert await ended is None
            assert got == events
            assert response.received == len(events)
            response.close()
            await pool.aclose()

    runner(main())


@pytest.mark.parametrize("runner", [run, run_on_uvloop], ids=["asyncio", "uvloop"])
def test_a_detached_consumer_gets_nothing_more_and_the_rest_is_kept_for_reading(
    runner: Callable[[Awaitable[None]], None],
) -> None:
    first, rest = b"data: {\"a\":1}\n\n", b"data: {\"b\":2}\n\n"
    go_on = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_STREAM_HEAD + b"%x\r\n%b\r\n" % (len(first), first))
        await writer.drain()
        await go_on.wait()
        writer.write(_chunked(rest))
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with Server(handler) as server:
            pool = H1Pool()
            response = await pool.request("POST", server.url, {}, b"{}")
            pushed: list[bytes] = []
            arrived = asyncio.Event()

            def on_data(data: bytes) -> None:
                pushed.append(data)
                arrived.set()

            response.attach(on_data, lambda error: None)
            await asyncio.wait_for(arrived.wait(), 10)
            response.detach()
            go_on.set()
            assert await asyncio.wait_for(response.read_body(1000), 10) == rest
            assert pushed == [first]
            assert response.received == 2
            response.close()
            await pool.aclose()

    runner(main())


@pytest.mark.parametrize("runner", [run, run_on_uvloop], ids=["asyncio", "uvloop"])
def test_bytes_on_an_idle_connection_close_it_so_it_is_never_reused(
    runner: Callable[[Awaitable[None]], None],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_STREAM_HEAD + _chunked(b"data: [DONE]\n\n"))
        await writer.drain()
        await asyncio.sleep(0.2)  # the client has put the connection back in its pool
        # An answer nobody asked for: the connection is out of step and must go.
        writer.write(_STREAM_HEAD + _chunked(b"data: {\"stray\":1}\n\n"))
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            await reader.read()

    async def main() -> None:
        async with Server(handler) as server:
            pool = H1Pool()
            response = await pool.request("POST", server.url, {}, b"{}")
            assert await response.read_body(1000) == b"data: [DONE]\n\n"
            response.close()
            await asyncio.sleep(0.5)
            response = await asyncio.wait_for(pool.request("POST", server.url, {}, b"{}"), 10)
            assert await asyncio.wait_for(response.read_body(1000), 10) == b"data: [DONE]\n\n"
            response.close()
            assert server.connections == 2
            await pool.aclose()

    runner(main())


def test_a_connection_is_reused_after_a_response_read_to_its_end() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await _read_request(reader)
            writer.write(_STREAM_HEAD + _chunked(b"data: [DONE]\n\n"))
            await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            pool = H1Pool()
            for _ in range(3):
                response = await pool.request("POST", server.url, {}, b"{}")
                assert await response.read_body(1000) == b"data: [DONE]\n\n"
                response.close()
            assert server.connections == 1
            await pool.aclose()

    run(main())


def test_the_connections_of_a_burst_of_streams_are_all_kept_for_the_next_burst() -> None:
    """200 concurrent streams, then 200 more: the second burst reuses every connection of
    the first instead of connecting again (a burst's connections are kept idle, not 64)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await _read_request(reader)
            writer.write(_STREAM_HEAD + _chunked(b"data: [DONE]\n\n"))
            await writer.drain()

    async def burst(pool: H1Pool, url: str, streams: int) -> None:
        responses = await asyncio.gather(
            *(pool.request("POST", url, {}, b"{}") for _ in range(streams))
        )
        for response in responses:  # all open at once, then read to their ends
            assert await response.read_body(1000) == b"data: [DONE]\n\n"
            response.close()

    async def main() -> None:
        async with Server(handler) as server:
            pool = H1Pool()
            await burst(pool, server.url, 200)
            await burst(pool, server.url, 200)
            assert server.connections == 200
            await pool.aclose()

    run(main())


def test_a_response_abandoned_mid_body_closes_its_connection() -> None:
    seen: list[asyncio.Event] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_STREAM_HEAD + b"6\r\ndata: \r\n")
        await writer.drain()
        assert await reader.read() == b""  # the client closed: the upstream stops here
        seen[0].set()

    async def main() -> None:
        seen.append(asyncio.Event())
        async with Server(handler) as server:
            pool = H1Pool()
            response = await pool.request("POST", server.url, {}, b"{}")
            assert await response.read_chunk() == b"data: "
            response.close()
            await asyncio.wait_for(seen[0].wait(), 10)
            await pool.aclose()

    run(main())


def test_a_keep_alive_connection_the_server_closed_is_replaced_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_STREAM_HEAD + _chunked(b"data: [DONE]\n\n"))
        await writer.drain()
        # ...and then the server closes its idle keep-alive connection.

    async def main() -> None:
        async with Server(handler) as server:
            pool = H1Pool()
            for _ in range(2):
                response = await pool.request("POST", server.url, {}, b"{}")
                assert await response.read_body(1000) == b"data: [DONE]\n\n"
                response.close()
                await asyncio.sleep(0.05)
            assert server.connections == 2
            await pool.aclose()

    run(main())


def test_a_body_without_length_or_chunking_ends_cleanly_when_the_server_closes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Connection: close\r\n\r\ndata: [DONE]\n\n")
        await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            pool = H1Pool()
            response = await pool.request("POST", server.url, {}, b"{}")
            assert await response.read_body(1000) == b"data: [DONE]\n\n"
            assert response.complete
            await pool.aclose()

    run(main())


def test_bytes_before_a_broken_connection_come_first_then_the_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_STREAM_HEAD + b"f\r\ndata: {\"a\":1}\n\n\r\n" + b"20\r\ndata: {\"cut")
        await writer.drain()

    async def main() -> None:
        async with Server(handler) as server:
            pool = H1Pool()
            response = await pool.request("POST", server.url, {}, b"{}")
            received = b""
            with pytest.raises(H1Closed):
                while True:
                    received += await response.read_chunk()
            assert received == b"data: {\"a\":1}\n\ndata: {\"cut"
            await pool.aclose()

    run(main())


def test_an_interim_100_continue_is_skipped_for_the_real_answer() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + b"HTTP/1.1 429 Too Many Requests\r\n"
                     b"Retry-After: 3\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with Server(handler) as server:
            pool = H1Pool()
            response = await pool.request("POST", server.url, {}, b"{}")
            assert response.status == 429
            assert response.headers["retry-after"] == "3"
            assert await response.read_body(100) == b"{}"
            response.close()
            await pool.aclose()

    run(main())


def test_something_other_than_http_is_an_error_not_a_hang() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with Server(handler) as server:
            pool = H1Pool()
            with pytest.raises(H1Error, match="malformed HTTP"):
                await asyncio.wait_for(pool.request("POST", server.url, {}, b"{}"), 10)
            await pool.aclose()

    run(main())


def test_a_header_value_with_a_line_break_is_refused_before_sending() -> None:
    async def main() -> None:
        pool = H1Pool()
        with pytest.raises(H1Error, match="line break"):
            await pool.request("POST", "http://127.0.0.1:9/x", {"X-A": "1\r\nX-B: 2"}, b"")

    run(main())


def test_nothing_listening_is_an_error_that_says_so() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(H1Error, match="Could not connect"):
            await H1Pool().request("GET", f"http://127.0.0.1:{port}/", {})

    run(main())


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def _tls_server(cert: Path, key: Path) -> asyncio.Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(_STREAM_HEAD + _chunked(b"data: [DONE]\n\n"))
            await writer.drain()
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)


def test_https_upstreams_are_read_over_verified_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)

    async def main() -> None:
        server = await _tls_server(cert, key)
        port = server.sockets[0].getsockname()[1]
        trusting = ssl.create_default_context(cafile=str(cert))
        pool = H1Pool(ssl_context=trusting)
        response = await pool.request("POST", f"https://127.0.0.1:{port}/v1/x", {}, b"{}")
        assert await response.read_body(1000) == b"data: [DONE]\n\n"
        response.close()
        await pool.aclose()
        server.close()

    run(main())


def test_an_https_upstream_with_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)

    async def main() -> None:
        server = await _tls_server(cert, key)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(H1Error, match="certificate verify failed"):
            await H1Pool().request("POST", f"https://127.0.0.1:{port}/v1/x", {}, b"{}")
        server.close()

    run(main())
