"""The load generator: K concurrent streams from its own process, latency read off the tokens.

Run by the benchmark as ``python -m sserelay.bench.loadgen --spec JSON --streams K ...``; it
prints one JSON summary (`LoadResult`) on stdout. It runs in its own process so that its CPU
never lands on the relay being measured, nor the relay's on it.

The fake upstream, scripted with ``stamp=1``, sends each token as its send time,
``time.time_ns()``. Whatever the relay does to the framing (OpenAI JSON chunks passed
through, bare text in ``data:``, extra ids), the 19 digits survive, so the latency of every
chunk is its receive time minus its stamp, on the one clock of this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import math
import re
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson
import uvloop

from sserelay.codec import SSEDecoder

__all__ = ["LoadResult", "RequestSpec", "main", "percentile", "run_load"]

# time.time_ns() has 19 digits from 2001 to 2286; nothing else in a chunk is that long.
_STAMP = re.compile(r"\d{19}")
_DONE = "[DONE]"
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
        self.ttfts_ns = array("q")
        self.ok = 0
        self.errors: collections.Counter[str] = collections.Counter()


async def _stream_url(session: aiohttp.ClientSession, spec: RequestSpec) -> str:
    async with session.request(
        spec.method, spec.url, json=spec.json_body, headers=spec.headers
    ) as response:
        if response.status >= 300:
            raise RuntimeError(f"HTTP {response.status} from {spec.method} {spec.url}")
        created = await response.json()
    where = created.get("url") or f"/v1/streams/{created['id']}"
    return urljoin(spec.url, str(where))


async def _one_stream(
    session: aiohttp.ClientSession, spec: RequestSpec, tokens: int, tally: _Tally
) -> None:
    started = time.time_ns()
    method, url, body = spec.method, spec.url, spec.json_body
    # A token made before it was asked for cannot be late: with `follow`, a token's latency
    # counts from the later of its stamp and the moment the follow request is sent (the
    # generation runs from the POST on; what it made before the GET is replayed at once).
    asked = 0
    if spec.follow:
        method, url, body = "GET", await _stream_url(session, spec), None
        asked = time.time_ns()
    headers = {"Accept": "text/event-stream", **spec.headers}
    received, first, done = 0, 0, False
    async with session.request(method, url, json=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from {method} {spec.url}")
        decoder = SSEDecoder()
        async for chunk in response.content.iter_any():
            now = time.time_ns()  # once per read: every event in it arrived now
            for event in decoder.feed(chunk):
                if event.data == _DONE:
                    done = True
                    continue
                for stamp in _STAMP.findall(event.data):
                    tally.latencies_ns.append(now - max(int(stamp), asked))
                    received += 1
                    if not first:
                        first = now
                        tally.ttfts_ns.append(now - started)
    # The article's Flask relay sends no [DONE]; a complete count is the real test.
    if received != tokens:
        raise RuntimeError(f"stream ended after {received} of {tokens} tokens (done={done})")
    tally.ok += 1


async def _guarded(
    session: aiohttp.ClientSession,
    spec: RequestSpec,
    tokens: int,
    tally: _Tally,
    timeout: float,
    delay: float,
) -> None:
    await asyncio.sleep(delay)
    try:
        async with asyncio.timeout(timeout):
            await _one_stream(session, spec, tokens, tally)
    except TimeoutError:
        tally.errors[f"no end within {timeout:g}s"] += 1
    except (aiohttp.ClientError, OSError, RuntimeError, ValueError) as exc:
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
    # No pool limit: every stream holds its own connection, as browsers' EventSources do.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        await asyncio.gather(
            *(
                _guarded(session, spec, tokens, tally, timeout, spread * i / streams)
                for i in range(streams)
            )
        )
    latencies = sorted(tally.latencies_ns)
    ttfts = sorted(tally.ttfts_ns)
    return LoadResult(
        streams=streams,
        ok=tally.ok,
        chunks=len(latencies),
        errors=dict(tally.errors.most_common(_MAX_ERROR_KINDS)),
        latency_us={f"p{q:g}": percentile(latencies, q) / 1e3 for q in (50, 90, 99, 100)},
        ttft_ms={f"p{q:g}": percentile(ttfts, q) / 1e6 for q in (50, 90, 99, 100)},
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
    result = uvloop.run(run_load(spec, args.streams, args.tokens, args.timeout, args.spread))
    print(orjson.dumps(dataclasses.asdict(result)).decode())


if __name__ == "__main__":
    main()
