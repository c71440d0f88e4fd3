"""Streams that survive the network: ids, resume with Last-Event-ID, replay, fan-out, stop,
with the memory log and with Redis Streams shared by two sserelay processes."""

from __future__ import annotations

import itertools
import json
import secrets
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sserelay.testing.procs import ServerProcess
from sserelay.testing.redis_server import RedisServer
from tests.conftest import Upstream, start_relay

WORDS = " ".join(f"word{i}" for i in range(30))
TEXT = "resume me\n  exactly 👩‍👩‍👧 " + WORDS


@pytest.fixture(scope="module")
def redis_pair(
    upstream: Upstream, redis_server: RedisServer
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two sserelay processes sharing one real redis-server."""
    with (
        start_relay(upstream.url, "--redis", redis_server.url) as one,
        start_relay(upstream.url, "--redis", redis_server.url) as two,
    ):
        yield one, two


@pytest.fixture(scope="module", params=["memory", "redis"])
def relays(
    request: pytest.FixtureRequest, relay: ServerProcess
) -> tuple[ServerProcess, ServerProcess]:
    """(where a stream starts, where it is resumed): the same process with the memory log, two
    processes sharing Redis with the Redis log."""
    if request.param == "memory":
        return relay, relay
    pair: tuple[ServerProcess, ServerProcess] = request.getfixturevalue("redis_pair")
    return pair


def read_events(sse: Iterator[ServerSentEvent], limit: int | None = None) -> list[ServerSentEvent]:
    """Up to `limit` events from `sse`, leaving the rest unread."""
    return list(itertools.islice(sse, limit))


def joined(events: list[ServerSentEvent]) -> str:
    return "".join(e.data for e in events if e.event == "message" and e.data != "[DONE]")


def upstream_count(upstream: Upstream, marker: str) -> int:
    return sum(marker in json.dumps(r["body"]) for r in upstream.requests())


def article_with_cuts(
    start: ServerProcess, resume: ServerProcess, prompt: str, cuts: list[int]
) -> tuple[list[ServerSentEvent], str]:
    """Read the article stream, dropping the connection after each count in `cuts`, and
    reconnecting (on `resume`) with the last id seen, as EventSource does."""
    events: list[ServerSentEvent] = []
    last_id: str | None = None
    stream_id = ""
    for i, cut in enumerate([*cuts, None]):
        server = start if i == 0 else resume
        headers = {"Last-Event-ID": last_id} if last_id else {}
        with (
            httpx.Client(base_url=server.url, timeout=30) as client,
            connect_sse(
                client,
                "GET",
                "/completionChat",
                headers=headers,
                params={"prompt": prompt, "disconnect": "continue"},
            ) as source,
        ):
            if source.response.status_code == 204:
                break
            stream_id = stream_id or source.response.headers["x-sserelay-stream"]
            got = read_events(source.iter_sse(), cut)
        events += got
        if got:
            last_id = got[-1].id
        if events and events[-1].data == "[DONE]":
            break
    return events, stream_id


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=4))
def test_reconnecting_with_last_id_reassembles_the_exact_text(
    relays: tuple[ServerProcess, ServerProcess], upstream: Upstream, cuts: list[int]
) -> None:
    """For random disconnect points, a client that reconnects with its last id gets exactly
    the upstream text, no token lost or repeated, and the upstream saw one request."""
    marker = f"m{secrets.token_hex(8)}"
    prompt = f"[[scenario: rate=200]] echo:{marker} {TEXT}"
    events, _ = article_with_cuts(*relays, prompt, cuts)
    assert events[-1].data == "[DONE]"
    assert joined(events) == f"{marker} {TEXT}"
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert upstream_count(upstream, marker) == 1


def test_reconnect_after_the_end_gets_204(relays: tuple[ServerProcess, ServerProcess]) -> None:
    """Once a stream was read to [DONE], resuming it (on any instance) gets 204: EventSource
    stops, and nothing is generated again."""
    events, _ = article_with_cuts(*relays, "echo:short", [])
    reply = httpx.get(
        relays[1].url + "/completionChat",
        params={"prompt": "echo:short"},
        headers={"Last-Event-ID": events[-1].id},
        timeout=30,
    )
    assert reply.status_code == 204


def start_stream(server: ServerProcess, text: str, rate: int = 100, **extra: Any) -> str:
    reply = httpx.post(
        server.url + "/v1/streams",
        timeout=30,
        json={
            "messages": [{"role": "user", "content": f"[[scenario: rate={rate}]] echo:{text}"}],
            **extra,
        },
    )
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["url"] == f"/v1/streams/{body['id']}"
    return str(body["id"])


def follow(server: ServerProcess, stream_id: str, **headers: str) -> list[ServerSentEvent]:
    with (
        httpx.Client(base_url=server.url, timeout=60) as client,
        connect_sse(client, "GET", f"/v1/streams/{stream_id}", headers=headers) as source,
    ):
        assert source.response.status_code == 200
        return list(source.iter_sse())


def chat_text(events: list[ServerSentEvent]) -> str:
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


def test_any_number_of_followers_get_the_same_stream(
    relays: tuple[ServerProcess, ServerProcess], upstream: Upstream
) -> None:
    """Several followers, on both instances, one joining after the end, receive identical
    events with ids, and the upstream saw exactly one request."""
    marker = f"m{secrets.token_hex(8)}"
    stream_id = start_stream(relays[0], f"{marker} {TEXT}", rate=50)
    first = follow(relays[0], stream_id)
    second = follow(relays[1], stream_id)
    late = follow(relays[1], stream_id)
    assert chat_text(first) == f"{marker} {TEXT}"
    as_tuples = [[(e.id, e.data) for e in events] for events in (first, second, late)]
    assert as_tuples[0] == as_tuples[1] == as_tuples[2]
    assert all(e.id.startswith(stream_id + ":") for e in first)
    assert upstream_count(upstream, marker) == 1


def test_follow_resumes_strictly_after_last_event_id_or_query_parameter(
    relays: tuple[ServerProcess, ServerProcess],
) -> None:
    """GET /v1/streams/{id} resumes strictly after the Last-Event-ID header, or the
    ?last_event_id= parameter that EventSource can send on its first request."""
    stream_id = start_stream(relays[0], TEXT)
    whole = follow(relays[0], stream_id)
    after = whole[4].id
    by_header = follow(relays[1], stream_id, **{"Last-Event-ID": after})
    with (
        httpx.Client(base_url=relays[1].url, timeout=30) as client,
        connect_sse(
            client, "GET", f"/v1/streams/{stream_id}", params={"last_event_id": after}
        ) as source,
    ):
        by_param = list(source.iter_sse())
    assert [e.id for e in by_header] == [e.id for e in whole[5:]]
    assert [e.id for e in by_param] == [e.id for e in whole[5:]]


def test_delete_stops_the_generation_and_followers_get_a_cancelled_end(
    relays: tuple[ServerProcess, ServerProcess], upstream: Upstream
) -> None:
    """DELETE /v1/streams/{id} (on any instance) stops the upstream; followers get
    finish_reason "cancelled", the usage so far, and [DONE]."""
    marker = f"m{secrets.token_hex(8)}"
    stream_id = start_stream(relays[0], marker + " " + "x " * 500, rate=20)
    with (
        httpx.Client(base_url=relays[1].url, timeout=60) as client,
        connect_sse(client, "GET", f"/v1/streams/{stream_id}") as source,
    ):
        sse = source.iter_sse()
        events = read_events(sse, 3)
        reply = client.delete(f"/v1/streams/{stream_id}")
        assert reply.status_code == 202
        events += list(sse)
    assert events[-1].data == "[DONE]"
    final = json.loads(events[-2].data)
    assert final["choices"][0]["finish_reason"] == "cancelled"
    # Every chunk relayed before the stop counts, those passed on without a look included.
    assert final["usage"]["completion_tokens"] == len(events) - 2
    for _ in range(100):
        record = next(r for r in upstream.requests() if marker in json.dumps(r["body"]))
        if record["disconnected"]:
            break
        time.sleep(0.1)
    assert record["disconnected"] and not record["completed"]


def test_unknown_stream_is_404_and_resuming_it_is_204(relay: ServerProcess) -> None:
    """Following a stream that never existed is a 404 in words; a reconnect to it (carrying
    Last-Event-ID) is 204 so EventSource stops, never a new generation."""
    reply = httpx.get(relay.url + "/v1/streams/nosuchstream", timeout=10)
    assert reply.status_code == 404 and "no stream" in reply.json()["error"]["message"]
    again = httpx.get(
        relay.url + "/v1/streams/nosuchstream",
        timeout=10,
        headers={"Last-Event-ID": "nosuchstream:3"},
    )
    assert again.status_code == 204


def test_finished_stream_expires_after_the_retention_window(upstream: Upstream) -> None:
    """After the retention window a finished stream is gone: a reconnect gets 204."""
    with start_relay(upstream.url, "--retention", "0.5") as relay:
        stream_id = start_stream(relay, "gone soon", rate=1000)
        events = follow(relay, stream_id)
        for _ in range(100):
            reply = httpx.get(
                f"{relay.url}/v1/streams/{stream_id}",
                timeout=10,
                headers={"Last-Event-ID": f"{stream_id}:1"},
            )
            if reply.status_code == 204:
                break
            time.sleep(0.1)
    assert events[-1].data == "[DONE]" and reply.status_code == 204


def test_killing_the_producer_gives_followers_elsewhere_a_truncated_end(
    upstream: Upstream, redis_server: RedisServer
) -> None:
    """If the sserelay instance producing a stream dies, followers on another instance get a
    typed `truncated` ending (the producer's lease in Redis lapses), never a hang."""
    with (
        start_relay(upstream.url, "--redis", redis_server.url) as producer,
        start_relay(upstream.url, "--redis", redis_server.url) as other,
    ):
        stream_id = start_stream(producer, "y " * 1000, rate=20)
        with (
            httpx.Client(base_url=other.url, timeout=60) as client,
            connect_sse(client, "GET", f"/v1/streams/{stream_id}") as source,
        ):
            sse = source.iter_sse()
            events = read_events(sse, 3)
            producer.send_signal(signal.SIGKILL)
            events += list(sse)
    assert events[-1].data == "[DONE]"
    error = json.loads(events[-2].data)["error"]
    assert error["ending"] == "truncated"


def test_chat_completions_stream_carries_ids_and_resumes_after_a_cut(
    relays: tuple[ServerProcess, ServerProcess], upstream: Upstream
) -> None:
    """A streamed /v1/chat/completions answer names its stream in X-Sserelay-Stream and gives
    every event an id; after the connection drops, GET /v1/streams/{id} with Last-Event-ID (on
    any instance) delivers exactly the rest, and the upstream saw one request."""
    marker = f"m{secrets.token_hex(8)}"
    body = {
        "model": "fake-chat",
        "stream": True,
        "messages": [{"role": "user", "content": f"[[scenario: rate=100]] echo:{marker} {TEXT}"}],
    }
    with (
        httpx.Client(base_url=relays[0].url, timeout=30) as client,
        connect_sse(client, "POST", "/v1/chat/completions", json=body) as source,
    ):
        assert source.response.status_code == 200
        stream_id = source.response.headers["x-sserelay-stream"]
        first = read_events(source.iter_sse(), 4)
    assert all(e.id.startswith(stream_id + ":") for e in first)
    rest = follow(relays[1], stream_id, **{"Last-Event-ID": first[-1].id})
    assert chat_text(first + rest) == f"{marker} {TEXT}"
    assert upstream_count(upstream, marker) == 1
