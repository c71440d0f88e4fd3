"""Memory stays flat across 1,000 streams: the relay's resident memory (from /proc) after a
warm-up and after 1,000 more short streams on every endpoint family, some of them failing
or abandoned, grows by less than a generous bound."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
from collections.abc import Callable

import httpx

from tests.conftest import assert_still_running

from .conftest import Relay
from .endpoints import FAMILIES, prompt

BATCH = 50
STREAMS = 1000
WARM_UP = 200
# Generous: allocator arenas, the memory log's retained streams and Python's caches settle
# at a few MB; a leak of even 30 KB per stream would pass it.
MAX_GROWTH_KIB = 30 * 1024
TOKENS = 12


async def one(client: httpx.AsyncClient, family: str, n: int) -> str:
    """One stream; every 10th fails upstream mid-answer, every 25th is abandoned early.
    Returns how it ended: done, error or left."""
    scenario = f"tokens={TOKENS}" + ("; die_after=4" if n % 10 == 0 else "")
    text = prompt(scenario, f"soak {n}")
    messages = [{"role": "user", "content": text}]
    if family == "article-get":
        request = client.build_request("GET", "/completionChat", params={"prompt": text})
    elif family == "article-post":
        request = client.build_request("POST", "/completions/chat", json={"prompt": text})
    elif family == "streams":
        created = await client.post("/v1/streams", json={"messages": messages})
        created.raise_for_status()
        request = client.build_request("GET", created.json()["url"])
    else:
        request = client.build_request("POST", "/v1/chat/completions", json={
            "model": "fake-chat", "stream": True, "messages": messages})
    response = await client.send(request, stream=True)
    try:
        assert response.status_code == 200, await response.aread()
        if n % 25 == 0:
            async for _ in response.aiter_raw():
                return "left"
        body = await response.aread()
    finally:
        await response.aclose()
    assert body.rstrip().endswith(b"data: [DONE]")
    return "error" if b'"error"' in body else "done"


async def soak(relay: Relay, count: int, start_at: int) -> dict[str, int]:
    endings: dict[str, int] = {}
    limits = httpx.Limits(max_connections=BATCH, max_keepalive_connections=BATCH)
    async with httpx.AsyncClient(base_url=relay.url, timeout=60, limits=limits) as client:
        numbers = iter(range(start_at, start_at + count))
        families = itertools.cycle(FAMILIES)
        while batch := list(itertools.islice(numbers, BATCH)):
            for ending in await asyncio.gather(*(one(client, next(families), n) for n in batch)):
                endings[ending] = endings.get(ending, 0) + 1
    return endings


def test_memory_is_flat_across_a_thousand_streams(relay_factory: Callable[..., Relay]) -> None:
    """RSS after 1,000 streams (done, failed, abandoned, on all four families) is within
    30 MB of RSS after a warm-up of 200."""
    # Finished streams are kept for resume for `retention` seconds; a short one lets the
    # memory log's retained streams turn over during the soak as they would in a long run.
    relay = relay_factory("--retention", "5")
    asyncio.run(soak(relay, WARM_UP, 0))
    before = relay.rss_kib()
    try:
        endings = asyncio.run(soak(relay, STREAMS, WARM_UP))
    except httpx.TransportError:
        # A dropped connection: say whether the relay itself died, with its last words
        # (its exit and the clients' dropped connections arrive in either order).
        with contextlib.suppress(subprocess.TimeoutExpired):
            relay.server.proc.wait(2)
        assert_still_running(relay.server)
        raise
    after = relay.rss_kib()
    print(f"soak: {endings}; RSS {before} KiB after warm-up, {after} KiB after {STREAMS}")
    assert sum(endings.values()) == STREAMS
    assert endings["error"] and endings["left"] and endings["done"]
    assert after - before < MAX_GROWTH_KIB, f"RSS grew by {after - before} KiB"
