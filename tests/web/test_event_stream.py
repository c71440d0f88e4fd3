"""EventStreamResponse chooses between pushing to uvicorn's transport and pulling its body.

The push path itself runs end to end in every relay test (sserelay serves with uvicorn's
httptools protocol); these pin the choice for the servers where it must not be taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from sserelay.web.event_stream import Channel, EventStreamResponse, transport_channel


async def _body() -> AsyncIterator[bytes]:
    yield b"data: pulled\n\n"


def _run(response: EventStreamResponse, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    asyncio.run(response(scope, receive, send))
    return sent


def test_another_asgi_server_gets_the_pulled_body_not_the_pusher() -> None:
    pushed: list[Channel] = []

    async def push(channel: Channel) -> None:
        pushed.append(channel)

    response = EventStreamResponse(_body(), push=push)
    sent = _run(response, {"type": "http", "method": "GET"})
    assert not pushed
    assert sent[0]["type"] == "http.response.start"
    assert [m["body"] for m in sent[1:]] == [b"data: pulled\n\n", b""]
    assert sent[-1]["more_body"] is False


def test_no_direct_channel_without_uvicorns_httptools_cycle() -> None:
    async def send(message: dict[str, Any]) -> None:
        return None

    assert transport_channel({"type": "http", "method": "GET"}, send) is None


def test_no_direct_channel_for_a_head_request_even_under_uvicorn() -> None:
    class RequestResponseCycle:  # shaped like uvicorn's, in uvicorn's module
        chunked_encoding = True
        response_started = True
        response_complete = False

        async def send(self, message: dict[str, Any]) -> None:
            return None

    RequestResponseCycle.__module__ = "uvicorn.protocols.http.httptools_impl"
    send = RequestResponseCycle().send
    assert transport_channel({"type": "http", "method": "HEAD"}, send) is None
