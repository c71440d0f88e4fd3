"""Graceful shutdown of a real process on SIGTERM: streams that finish within the grace
period finish; the rest are cut so that their clients resume on another instance, where the
stream ends with the typed `truncated` ending; gateway streams get their typed ending; no
traceback, and nothing is left upstream."""

from __future__ import annotations

import json
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from sserelay.codec import ServerSentEvent, SSEDecoder
from sserelay.testing.redis_server import RedisServer
from tests.conftest import Upstream

from .conftest import Relay, upstream_closed, wait_for
from .endpoints import prompt, start


@dataclass
class Reading:
    """A stream being read event by event."""

    response: httpx.Response
    events: list[ServerSentEvent] = field(default_factory=list)
    broken: bool = False

    def __post_init__(self) -> None:
        self._decoder = SSEDecoder()
        self._raw = self.response.iter_raw()

    def read(self, count: int | None = None) -> None:
        """Read `count` more events, or to the end of the response (however it ends)."""
        try:
            while count is None or count > 0:
                chunk = next(self._raw, None)
                if chunk is None:
                    break
                new = list(self._decoder.feed(chunk))
                self.events += new
                if count is not None:
                    count -= len(new)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            self.broken = True  # the connection was cut mid-body
        if count is None:
            self.response.close()

    @property
    def done(self) -> bool:
        return any(e.data == "[DONE]" for e in self.events)

    @property
    def last_id(self) -> str:
        return [e.id for e in self.events if e.id][-1]

    def text(self, chat: bool) -> str:
        if not chat:
            return "".join(e.data for e in self.events if e.event == "message"
                           and e.data != "[DONE]")
        pieces = []
        for event in self.events:
            if event.data.startswith("{"):
                for choice in json.loads(event.data).get("choices") or ():
                    pieces.append((choice.get("delta") or {}).get("content") or "")
        return "".join(pieces)

    def error(self) -> dict[str, str]:
        for event in self.events:
            if event.event == "error" or event.data.startswith('{"error"'):
                error: dict[str, str] = json.loads(event.data)["error"]
                return error
        raise AssertionError("no typed error ending")


def stop(relay: Relay) -> None:
    relay.server.send_signal(signal.SIGTERM)


def exited(relay: Relay) -> None:
    wait_for(lambda: relay.server.proc.poll() is not None, "the relay to exit")


def test_streams_within_the_grace_period_finish_and_new_ones_are_refused(
    relay_factory: Callable[..., Relay],
) -> None:
    """After SIGTERM, running streams end normally ([DONE], all the text) and the server no
    longer accepts connections; then the process exits."""
    relay = relay_factory("--shutdown-grace", "20")
    with relay.client() as client:
        readings = {family: Reading(start(client, family, prompt("tokens=30; rate=15", "hi")))
                    for family in ("article-get", "chat")}
        for reading in readings.values():
            reading.read(2)
        stop(relay)
        for family, reading in readings.items():
            reading.read()
            relay.keep("".join(e.data for e in reading.events))
            assert reading.done and not reading.broken
            assert reading.text(chat=family == "chat") == "".join(f"tok{i} " for i in range(30))
    # A new connection, not one from the client's pool: a pooled keep-alive connection the
    # server closes after its response fails with a reset instead, whatever the server does.
    with relay.client() as fresh, pytest.raises(httpx.ConnectError):
        fresh.get("/completionChat", params={"prompt": "hi"})
    exited(relay)


def test_streams_past_the_grace_period_resume_on_another_instance(
    relay_factory: Callable[..., Relay], upstream: Upstream, redis_server: RedisServer
) -> None:
    """At the end of the grace period: followers are cut without [DONE] and resume on
    another instance sharing the Redis log, where the stream ends `truncated` with no text
    repeated; a gateway stream ends with its typed error and [DONE]; the upstream requests
    are closed; the process exits with no traceback."""
    redis = ("--redis", redis_server.url)
    doomed = relay_factory(*redis, "--shutdown-grace", "1", "--max-duration", "60")
    other = relay_factory(*redis)
    markers = {family: secrets.token_hex(6) for family in ("article-get", "streams", "chat")}
    with doomed.client() as client:
        readings = {family: Reading(start(client, family,
                                          prompt("tokens=600; rate=30", marker)))
                    for family, marker in markers.items()}
        for reading in readings.values():
            reading.read(2)
        stop(doomed)
        for reading in readings.values():
            reading.read()
            doomed.keep("".join(e.data for e in reading.events))

    gateway = readings.pop("chat")
    assert gateway.done and gateway.error()["ending"] == "truncated"
    everything = "".join(f"tok{i} " for i in range(600))
    with other.client() as client:
        for family, reading in readings.items():
            assert not reading.done, f"{family}: a cut follower must not be told it is over"
            url = (f"/v1/streams/{reading.last_id.split(':')[0]}" if family == "streams"
                   else "/completionChat")
            resumed = Reading(client.send(client.build_request(
                "GET", url, headers={"Last-Event-ID": reading.last_id},
                params={} if family == "streams" else {"prompt": "never run again"},
            ), stream=True))
            resumed.read()
            other.keep("".join(e.data for e in resumed.events))
            assert resumed.done
            assert resumed.error()["code"] == "producer_lost"
            chat = family == "streams"
            text = reading.text(chat) + resumed.text(chat)
            assert everything.startswith(text) and len(text) < len(everything)
    for marker in markers.values():
        upstream_closed(upstream, marker)
    exited(doomed)
    assert "returned without completing" not in doomed.server.output()
