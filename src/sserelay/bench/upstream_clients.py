"""Which HTTP client should read the upstream's stream? Measured, not guessed.

Run ``python -m sserelay.bench.upstream_clients``. It starts the fake upstream as its own
process, then, in this process, reads K concurrent streams with each client and feeds every
read into sserelay's `SSEDecoder`, as the relay does. The figure of merit is decoded chunks
per CPU-second of *this* process (``time.process_time()``), since a relay's throughput is
bound by its own CPU, not by wall time on loopback. The upstream's CPU is not counted.

The result is recorded in docs/decisions.md, "Upstream HTTP client".
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata

import aiohttp
import httpx
import orjson
import uvloop

from sserelay.bench.machine import cpu_model
from sserelay.codec import SSEDecoder
from sserelay.testing.procs import ServerProcess

# One stream's reader: (url, headers, body) -> decoded event count.
Reader = Callable[[str, dict[str, str], bytes], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Load:
    name: str
    streams: int
    tokens: int
    rate: float | None  # tokens/s per stream; None: as fast as the upstream can send

    @property
    def scenario(self) -> str:
        rate = "" if self.rate is None else f"; rate={self.rate:g}"
        return f"tokens={self.tokens}{rate}"


@dataclass(frozen=True, slots=True)
class Sample:
    chunks: int
    cpu_s: float
    wall_s: float


class AiohttpReader:
    """One pooled ClientSession, ``content.iter_any()``: what the relay does today."""

    def __init__(self) -> None:
        connector = aiohttp.TCPConnector(limit=0)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        )

    async def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        decoder = SSEDecoder()
        count = 0
        async with self.session.post(url, data=body, headers=headers) as response:
            response.raise_for_status()
            async for chunk in response.content.iter_any():
                count += len(decoder.feed(chunk))
        return count

    async def aclose(self) -> None:
        await self.session.close()


class HttpxReader:
    """One AsyncClient; ``aiter_raw`` (no content decoding) or ``aiter_bytes``."""

    def __init__(self, streams: int, *, raw: bool) -> None:
        # httpx's default pool (100 connections) would queue streams beyond it.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=streams)
        self.client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(None))
        self.raw = raw

    async def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        decoder = SSEDecoder()
        count = 0
        async with self.client.stream("POST", url, content=body, headers=headers) as response:
            response.raise_for_status()
            chunks = response.aiter_raw() if self.raw else response.aiter_bytes()
            async for chunk in chunks:
                count += len(decoder.feed(chunk))
        return count

    async def aclose(self) -> None:
        await self.client.aclose()


CLIENTS: dict[str, Callable[[int], AiohttpReader | HttpxReader]] = {
    "aiohttp iter_any": lambda streams: AiohttpReader(),
    "httpx aiter_raw": lambda streams: HttpxReader(streams, raw=True),
    "httpx aiter_bytes": lambda streams: HttpxReader(streams, raw=False),
}


async def _round(reader: Reader, url: str, load: Load) -> Sample:
    headers = {"Content-Type": "application/json", "X-Fake-Scenario": load.scenario}
    body = orjson.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    cpu, wall = time.process_time(), time.perf_counter()
    counts = await asyncio.gather(*(reader(url, headers, body) for _ in range(load.streams)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    # role chunk + tokens + finish chunk + [DONE]: a short count means a broken stream.
    expected = load.tokens + 3
    if any(c != expected for c in counts):
        raise RuntimeError(f"{load.name}: expected {expected} events per stream, got {counts[:5]}")
    return Sample(sum(counts), cpu, wall)


Results = dict[tuple[str, str], list[Sample]]  # (load name, client name) -> samples


async def measure(base_url: str, loads: list[Load], repeats: int) -> Results:
    """Per (load, client): `repeats` samples, clients interleaved so drift hits all alike."""
    url = base_url + "/v1/chat/completions"
    results: Results = {}
    for load in loads:
        readers = {name: make(load.streams) for name, make in CLIENTS.items()}
        try:
            for reader in readers.values():  # warm-up: open the pools' connections once
                await _round(reader, url, Load("warm-up", load.streams, 5, None))
            for _ in range(repeats):
                for name, reader in readers.items():
                    sample = await _round(reader, url, load)
                    results.setdefault((load.name, name), []).append(sample)
        finally:
            for reader in readers.values():
                await reader.aclose()
    return results


def _markdown(results: Results, loads: list[Load], repeats: int) -> str:
    lines = [
        f"| load | client | chunks per CPU-second (median of {repeats}) | CPU µs per chunk | "
        "vs aiohttp |",
        "|---|---|---:|---:|---:|",
    ]
    for load in loads:
        medians = {
            client: statistics.median(s.chunks / s.cpu_s for s in samples)
            for (name, client), samples in results.items()
            if name == load.name
        }
        base = medians["aiohttp iter_any"]
        for client, rate in medians.items():
            lines.append(
                f"| {load.name} | {client} | {rate:,.0f} | {1e6 / rate:.1f} | {rate / base:.2f}x |"
            )
    return "\n".join(lines)


def machine_line() -> str:
    import os

    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("aiohttp", "httpx", "uvloop"))
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, "
        f"{versions}; a shared machine, so absolute figures drift: compare within a run."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sserelay.bench.upstream_clients",
        description="Relayed chunks per CPU-second: aiohttp vs httpx reading the fake upstream.",
    )
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s of the paced load")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    loads = [
        Load(f"{args.streams} x {args.tokens}, unpaced", args.streams, args.tokens, None),
        Load(
            f"{args.streams} x {args.tokens} at {args.rate:g} tok/s",
            args.streams, args.tokens, args.rate,
        ),
    ]
    argv_up = [sys.executable, "-m", "sserelay.testing.fake_upstream", "--port", "{port}"]
    with ServerProcess(argv_up) as upstream:
        # uvloop, as `sserelay serve` runs: the client's cost is measured on the relay's loop.
        results = uvloop.run(measure(upstream.url, loads, args.repeats))
    print(_markdown(results, loads, args.repeats))
    print()
    print(machine_line())


if __name__ == "__main__":
    main()
