"""The load generator's reading of stamps, against a real socket server that cuts its
bytes where a relay's writes may cut them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from sserelay.bench.loadgen import RequestSpec, run_load

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]


async def _serving(pieces: Sequence[bytes], status: bytes = b"200 OK") -> asyncio.Server:
    """A server that answers every request with a chunked body written in `pieces`, each
    flushed on its own, a few ms apart."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 %s\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n" % status)  # fmt: skip
        for piece in pieces:
            piece = piece.replace(_NOW, _stamp())  # stamped as it is sent
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.005)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


_NOW = b"<now>"


def _stamp() -> bytes:
    return b"%d" % time.time_ns()


async def _load(pieces: Sequence[bytes], tokens: int, status: bytes = b"200 OK") -> Any:
    server = await _serving(pieces, status)
    port = server.sockets[0].getsockname()[1]
    async with server:
        spec = RequestSpec("GET", f"http://127.0.0.1:{port}/completionChat?prompt=x")
        return await run_load(spec, streams=3, tokens=tokens, timeout=10)


def test_a_stamp_cut_between_reads_counts_once(run: Run[Any]) -> None:
    """A token whose digits arrive in two reads is one token, timed when its line is whole."""
    one, two = _stamp(), _stamp()
    pieces = [b"id: s:1\ndata: " + one[:7], one[7:] + b"\n\n", b"data: " + two + b"\n\n",
              b"data: [DONE]\n\n"]  # fmt: skip
    result = run(_load(pieces, tokens=2))
    assert (result.ok, result.chunks, result.errors) == (3, 6, {})
    assert 0 < result.latency_us["p50"] < 10_000_000


def test_a_stream_with_fewer_tokens_than_asked_is_an_error_not_a_pass(run: Run[Any]) -> None:
    """A stream cut short is counted as failed, with how many tokens it carried."""
    result = run(_load([b"data: " + _stamp() + b"\n\n"], tokens=2))
    assert result.ok == 0
    assert result.errors == {"RuntimeError: stream ended after 1 of 2 tokens (done=False)": 3}


def test_a_non_200_answer_is_an_error_naming_the_status(run: Run[Any]) -> None:
    """A relay that refuses the stream fails it, with the status in the report."""
    result = run(_load([b"{}"], tokens=1, status=b"503 Service Unavailable"))
    assert result.ok == 0
    [(error, count)] = result.errors.items()
    assert error.startswith("RuntimeError: HTTP 503 from GET http://127.0.0.1:")
    assert count == 3


def test_tokens_made_before_the_first_bytes_arrived_are_left_out_of_the_flow(
    run: Run[Any],
) -> None:
    """Tokens made before a stream's first bytes reached the client (a backlog replayed when
    the request is served) count in its latency but not in the latency once flowing; tokens
    made later do."""
    old = b"%d" % (time.time_ns() - 5_000_000_000)  # made 5 s before anyone asked
    pieces = [b"data: " + old + b"\n\n", b"data: " + old + b"\n\n", b"data: " + _NOW + b"\n\n",
              b"data: [DONE]\n\n"]  # fmt: skip
    result = run(_load(pieces, tokens=3))
    assert (result.ok, result.chunks) == (3, 9)
    assert result.latency_us["p99"] > 4_000_000
    assert 0 < result.later_latency_us["p99"] < 1_000_000


async def _follow_load(tokens: int) -> tuple[Any, list[tuple[int, bytes]]]:
    """POST /v1/streams then GET its url, against a server that notes which connection
    (by its number) each request line came on."""
    seen: list[tuple[int, bytes]] = []
    connections = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        while head := await reader.readuntil(b"\r\n\r\n"):
            line = head.split(b"\r\n", 1)[0]
            seen.append((number, line))
            if line.startswith(b"POST"):
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                body = b'{"id": "s1", "url": "/v1/streams/s1"}'
                writer.write(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
                continue
            events = b"".join(b"data: %s\n\n" % _stamp() for _ in range(tokens))
            events += b"data: [DONE]\n\n"
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(events), events))  # fmt: skip
            await writer.drain()
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await reader.readuntil(b"\r\n\r\n")  # the client closes: nothing more comes
            writer.close()
            return

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        spec = RequestSpec("POST", f"http://127.0.0.1:{port}/v1/streams", {"messages": []},
                           follow=True)  # fmt: skip
        return await run_load(spec, streams=2, tokens=tokens, timeout=10), seen


def test_a_followed_stream_is_read_on_the_connection_that_started_it(run: Run[Any]) -> None:
    """POST /v1/streams and its GET go on one keep-alive connection, as a browser's page
    and an HTTP client's pool send them; each stream has a connection of its own."""
    result, seen = run(_follow_load(tokens=2))
    assert (result.ok, result.chunks, result.errors) == (2, 4, {})
    by_connection: dict[int, list[bytes]] = {}
    for number, line in seen:
        by_connection.setdefault(number, []).append(b" ".join(line.split(b" ")[:2]))
    assert sorted(by_connection.values()) == [[b"POST /v1/streams", b"GET /v1/streams/s1"]] * 2
