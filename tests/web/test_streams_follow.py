"""GET /v1/streams/{id} of a generation running on this instance follows it without asking
the stream log whether it exists (for Redis, a round trip per follower); a stream this
instance does not run is still looked up, and an unknown one is a 404."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from sserelay.streams import StreamInfo


def test_following_a_stream_generated_here_does_not_ask_the_log(app: Any) -> None:
    log = app.state.generations.log
    asked: list[str] = []
    status = log.status

    async def counted(stream_id: str) -> StreamInfo | None:
        asked.append(stream_id)
        return await status(stream_id)

    log.status = counted

    async def run() -> tuple[str, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://sserelay") as client:
                started = await client.post("/v1/streams", json={"messages": [
                    {"role": "user", "content": "[[scenario: tokens=5; rate=50]] hello"}]})
                followed = await client.get(started.json()["url"])
                unknown = await client.get("/v1/streams/s_doesnotexist0000000000")
                return started.json()["id"], followed, unknown
        finally:
            await app.state.gateway.aclose()

    stream_id, followed, unknown = asyncio.run(run())
    assert followed.status_code == 200 and "data: [DONE]" in followed.text
    assert stream_id not in asked
    assert unknown.status_code == 404
    assert asked == ["s_doesnotexist0000000000"]
