"""The load generator: K concurrent streams from its own process, latency read off the tokens.

Run by the benchmark as ``python -m sserelay.bench.loadgen --spec JSON --streams K ...``; it
prints one JSON summary (`LoadResult`) on stdout. It runs in its own process so that its CPU
never lands on the relay being measured, nor the relay's on it.

The benchmark's upstream (`stamped_upstream`), scripted with ``stamp=1``, sends each token
as its send time, ``time.time_ns()``. Whatever the relay does to the framing (OpenAI JSON
chunks passed through, bare text in ``data:``, extra ids), the 19 digits survive, so the
latency of every chunk is its receive time minus its stamp, on the one clock of this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import gc
import json
import math
import re
import time
from array import array
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httptools
import orjson
import uvloop

__all__ = ["LoadResult", "RequestSpec", "main", "percentile", "run_load"]

# time.time_ns() has 19 digits from 2001 to 2286; nothing else in a chunk is that long.
_STAMP = re.compile(rb"\d{19}")
_DONE = b"data: [DONE]"
_MAX_ERROR_KINDS = 5


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One stream's request. With `follow`, the request answers JSON naming a stream
    (``{"id", "url"}``, as ``POST /v1/streams`` does) and the stream is then read with GET."""

    method: str
    url: str
    json_body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    follow: bool = False


@dataclass(slots=True)
class LoadResult:
    streams: int
    ok: int = 0
    chunks: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency_us: dict[str, float] = field(default_factory=dict)  # p50, p90, p99, max
    # The same, for the tokens made after their stream's first bytes arrived: those made
    # before waited for the request to be served (for /v1/streams, all those made before its
    # GET was answered, replayed then), which is its TTFT, not the latency of the flow.
    later_latency_us: dict[str, float] = field(default_factory=dict)
    ttft_ms: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0  # the load generator's own CPU: shows when it, not the relay, is busy

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadResult:
        return cls(**data)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0.0 when it is empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


class _Tally:
    """What all streams saw; one array of ints, not one object per chunk."""

    def __init__(self) -> None:
        self.latencies_ns = array("q")
        self.later_ns = array("q")  # tokens made after their stream's first bytes arrived
        self.ttfts_ns = array("q")
        self.ok = 0
        self.errors: collections.Counter[str] = collections.Counter()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, its requests sent one after another (keep-alive), each
    response's body handed to that request's `on_body` with the time its read arrived.

    A bare protocol on httptools rather than aiohttp: aiohttp's client cost ~67 µs of CPU
    per chunk here, and the load generator shares the two cores with the relay it measures
    (docs/decisions.md, "The benchmark's own processes")."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._now = 0
        self._on_body: Callable[[bytes, int], None] = _ignore
        self.status = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.WriteTransport | None = None

    def send(self, request: bytes, on_body: Callable[[bytes, int], None]) -> None:
        """Send `request`; `finished` resolves when its response has been read whole."""
        assert self.transport is not None
        self._on_body, self.status = on_body, 0
        self.finished = asyncio.get_running_loop().create_future()
        if self.transport.is_closing():  # the server closed it after the last response
            self._fail(ConnectionResetError("the connection closed between requests"))
            return
        self.transport.write(request)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._now = time.time_ns()  # once per read: every event in it arrived now
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ValueError(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionResetError("the connection closed before the response ended"))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._on_body(body, self._now)

    def on_message_complete(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if not self.finished.done():
            self.finished.set_exception(exc)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _ignore(_body: bytes, _now: int) -> None:
    pass


def _request_bytes(method: str, url: str, body: dict[str, Any] | None,
                   headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    payload = b"" if body is None else orjson.dumps(body)
    lines = [f"{method} {target or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + payload


async def _exchange(connection: _Connection, method: str, url: str,
                    body: dict[str, Any] | None, headers: dict[str, str],
                    on_body: Callable[[bytes, int], None]) -> int:
    """Send one request on `connection` and read its response to the end; its status."""
    connection.send(_request_bytes(method, url, body, headers), on_body)
    await connection.finished
    return connection.status


async def _stream_url(connection: _Connection, spec: RequestSpec) -> str:
    pieces: list[bytes] = []
    status = await _exchange(connection, spec.method, spec.url, spec.json_body, spec.headers,
                             lambda body, _now: pieces.append(body))
    if status >= 300:
        raise RuntimeError(f"HTTP {status} from {spec.method} {spec.url}")
    created = orjson.loads(b"".join(pieces))
    where = created.get("url") or f"/v1/streams/{created['id']}"
    return urljoin(spec.url, str(where))


async def _one_stream(spec: RequestSpec, tokens: int, tally: _Tally) -> None:
    started = time.time_ns()
    async with _connected(spec.url) as connection:
        await _read_stream(connection, spec, tokens, tally, started)


@contextlib.asynccontextmanager
async def _connected(url: str) -> AsyncIterator[_Connection]:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _transport, connection = await loop.create_connection(
        _Connection, parts.hostname or "127.0.0.1", parts.port or 80
    )
    try:
        yield connection
    finally:
        connection.close()


async def _read_stream(
    connection: _Connection, spec: RequestSpec, tokens: int, tally: _Tally, started: int
) -> None:
    method, url, body = spec.method, spec.url, spec.json_body
    # A token made before it was asked for cannot be late: with `follow`, a token's latency
    # counts from the later of its stamp and the moment the follow request is sent (the
    # generation runs from the POST on; what it made before the GET is replayed at once).
    asked = 0
    if spec.follow:
        # On the POST's connection, as a browser's EventSource or an HTTP client's pool
        # takes the idle keep-alive connection to the same origin.
        method, url, body = "GET", await _stream_url(connection, spec), None
        asked = time.time_ns()
    headers = {"Accept": "text/event-stream", **spec.headers}
    latencies, later = tally.latencies_ns, tally.later_ns
    received, first, done, carry = 0, 0, False, b""

    # The stamps are read straight off the body bytes, whole lines at a time (a stamp may be
    # split between reads, never between lines). No SSE decoding: nothing in any relay's
    # framing is 19 digits long (stream ids are 16 base64 characters), and a miscount
    # would fail the stream below, not pass silently.
    def on_body(chunk: bytes, now: int) -> None:
        nonlocal received, first, done, carry
        if carry:
            chunk, carry = carry + chunk, b""
        cut = chunk.rfind(b"\n") + 1
        if cut < len(chunk):
            carry = chunk[cut:]
        for stamp in _STAMP.findall(chunk, 0, cut):
            made = int(stamp)
            latency = now - max(made, asked)
            latencies.append(latency)
            received += 1
            if not first:
                first = now
                tally.ttfts_ns.append(now - started)
            elif made >= first:  # one clock: the upstream stamps with time.time_ns() too
                later.append(latency)
        if _DONE in chunk:
            done = True

    status = await _exchange(connection, method, url, body, headers, on_body)
    if status != 200:
        raise RuntimeError(f"HTTP {status} from {method} {spec.url}")
    # The article's Flask relay sends no [DONE]; a complete count is the real test.
    if received != tokens:
        raise RuntimeError(f"stream ended after {received} of {tokens} tokens (done={done})")
    tally.ok += 1


async def _guarded(
    spec: RequestSpec, tokens: int, tally: _Tally, timeout: float, delay: float
) -> None:
    await asyncio.sleep(delay)
    try:
        async with asyncio.timeout(timeout):
            await _one_stream(spec, tokens, tally)
    except TimeoutError:
        tally.errors[f"no end within {timeout:g}s"] += 1
    except (OSError, RuntimeError, ValueError) as exc:
        tally.errors[f"{type(exc).__name__}: {exc}"[:200]] += 1


async def run_load(
    spec: RequestSpec, streams: int, tokens: int, timeout: float, spread: float = 0.0
) -> LoadResult:
    """Open `streams` streams, their starts spread evenly over `spread` seconds, read each to
    its end, and summarise.

    Spreading the starts over one token interval gives the streams independent phases, as
    separate users' streams have. Started in the same instant, K paced streams would send
    their tokens in synchronised bursts of K, and every hop would queue whole bursts: a
    harness artefact that no real upstream produces."""
    tally = _Tally()
    cpu, wall = time.process_time(), time.perf_counter()
    # Every stream holds its own connection, as browsers' EventSources do.
    await asyncio.gather(
        *(_guarded(spec, tokens, tally, timeout, spread * i / streams) for i in range(streams))
    )
    latencies = sorted(tally.latencies_ns)
    later = sorted(tally.later_ns)
    ttfts = sorted(tally.ttfts_ns)
    return LoadResult(
        streams=streams,
        ok=tally.ok,
        chunks=len(latencies),
        errors=dict(tally.errors.most_common(_MAX_ERROR_KINDS)),
        latency_us={f"p{q:g}": percentile(latencies, q) / 1e3 for q in (50, 90, 99, 100)},
        ttft_ms={f"p{q:g}": percentile(ttfts, q) / 1e6 for q in (50, 90, 99, 100)},
        later_latency_us={f"p{q:g}": percentile(later, q) / 1e3 for q in (50, 99)},
        wall_s=time.perf_counter() - wall,
        cpu_s=time.process_time() - cpu,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sserelay.bench.loadgen",
        description="Open K concurrent SSE streams of stamped tokens; print a JSON summary.",
    )
    parser.add_argument("--spec", required=True, help="the RequestSpec, as JSON")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--tokens", type=int, required=True, help="stamped tokens per stream")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per stream")
    parser.add_argument("--spread", type=float, default=0.0,
                        help="seconds over which the stream starts are spread evenly")
    args = parser.parse_args(argv)  # fmt: skip
    spec = RequestSpec(**json.loads(args.spec))
    # No collector pauses in the measuring instrument: one pass of it over 500 streams' objects
    # stalled every stream's reads for ~20 ms at once, which read as the relay's latency. This
    # process lives for one load; reference counting frees nearly everything meanwhile.
    gc.disable()
    result = uvloop.run(run_load(spec, args.streams, args.tokens, args.timeout, args.spread))
    print(orjson.dumps(dataclasses.asdict(result)).decode())


if __name__ == "__main__":
    main()
