"""Timeouts and heartbeats against a real upstream that stalls, waits or never ends: every
stream ends with its typed ending, nothing waits past its limit, and the upstream is closed."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import connect_sse

from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream, start_relay


@pytest.fixture(scope="module")
def strict_relay(upstream: Upstream) -> Iterator[ServerProcess]:
    """sserelay with short limits, so that each can be seen to fire."""
    args = [
        "--heartbeat",
        "0.3",
        "--first-token-timeout",
        "2",
        "--idle-timeout",
        "1",
        "--max-duration",
        "4",
    ]
    with start_relay(upstream.url, *args) as relay:
        yield relay


def typed_ending(relay: ServerProcess, scenario: str) -> dict[str, str]:
    with (
        httpx.Client(base_url=relay.url, timeout=30) as client,
        connect_sse(
            client, "GET", "/completionChat", params={"prompt": f"[[scenario: {scenario}]] hi"}
        ) as source,
    ):
        assert source.response.status_code == 200
        events = list(source.iter_sse())
    assert events[-1].data == "[DONE]" and events[-2].event == "error"
    error: dict[str, str] = json.loads(events[-2].data)["error"]
    return error


def wait_disconnected(upstream: Upstream, marker: str) -> dict[str, object]:
    for _ in range(100):
        record = next(r for r in upstream.requests() if marker in json.dumps(r["body"]))
        if record["disconnected"]:
            return record
        time.sleep(0.1)
    raise AssertionError(f"the upstream request {marker} was never closed")


def test_heartbeats_flow_while_waiting_for_the_first_token(strict_relay: ServerProcess) -> None:
    """While the upstream has not answered, the client already has a 200 and SSE comments
    (heartbeats), then the answer arrives intact."""
    with httpx.stream(
        "GET",
        strict_relay.url + "/completionChat",
        timeout=30,
        params={"prompt": "[[scenario: first_delay=1.2]] echo:late but whole"},
    ) as reply:
        assert reply.status_code == 200
        body = b"".join(reply.iter_raw())
    first_data = body.index(b"data:")
    assert b": ping\n\n" in body[:first_data]
    with (
        httpx.Client(base_url=strict_relay.url, timeout=30) as client,
        connect_sse(
            client,
            "GET",
            "/completionChat",
            params={"prompt": "[[scenario: first_delay=1.2]] echo:late but whole"},
        ) as source,
    ):
        text = "".join(e.data for e in source.iter_sse() if e.data != "[DONE]")
    assert text == "late but whole"


def test_failure_after_heartbeats_started_is_a_typed_error_ending(
    strict_relay: ServerProcess,
) -> None:
    """An upstream error that comes after the response has started (heartbeats were sent)
    ends the stream with `event: error`, then [DONE]."""
    error = typed_ending(strict_relay, "first_delay=1; status=500")
    assert error["code"] == "upstream_unavailable"


def test_stalled_upstream_hits_the_idle_timeout(strict_relay: ServerProcess) -> None:
    """An upstream that stops sending mid-answer ends the stream as truncated (idle_timeout)."""
    error = typed_ending(strict_relay, "stall_after=2; tokens=50")
    assert (error["code"], error["ending"]) == ("idle_timeout", "truncated")


def test_stalled_upstream_request_is_closed_at_the_upstream(
    strict_relay: ServerProcess, upstream: Upstream
) -> None:
    """After the idle timeout fires, the upstream sees its connection closed."""
    marker = secrets.token_hex(6)
    with (
        httpx.Client(base_url=strict_relay.url, timeout=30) as client,
        connect_sse(
            client,
            "GET",
            "/completionChat",
            params={"prompt": f"[[scenario: stall_after=2]] echo:{marker} a b c d e f"},
        ) as source,
    ):
        list(source.iter_sse())
    record = wait_disconnected(upstream, marker)
    assert not record["completed"]


def test_an_answer_longer_than_the_max_duration_is_cut_with_a_typed_ending(
    strict_relay: ServerProcess,
) -> None:
    """A never-ending answer is cut at --max-duration with ending truncated (duration_limit)."""
    error = typed_ending(strict_relay, "tokens=100000; rate=20")
    assert (error["code"], error["ending"]) == ("duration_limit", "truncated")


def test_upstream_that_never_answers_gets_504_before_the_first_byte(upstream: Upstream) -> None:
    """With the heartbeat longer than the first-token limit, an upstream that never answers
    gets a real 504 status in words."""
    with start_relay(upstream.url, "--first-token-timeout", "0.5") as relay:
        reply = httpx.get(
            relay.url + "/completionChat",
            timeout=30,
            params={"prompt": "[[scenario: first_delay=5]] hi"},
        )
    assert reply.status_code == 504
    assert "did not answer in time" in reply.json()["error"]["message"]


def test_gateway_answer_longer_than_the_max_duration_is_cut_with_a_typed_ending(
    strict_relay: ServerProcess,
) -> None:
    """/v1/chat/completions is bound by --max-duration too: a never-ending answer ends with
    an OpenAI error chunk (code duration_limit, ending truncated), then [DONE]."""
    body = {
        "model": "fake-chat",
        "stream": True,
        "messages": [{"role": "user", "content": "[[scenario: tokens=100000; rate=20]] x"}],
    }
    with (
        httpx.Client(base_url=strict_relay.url, timeout=30) as client,
        connect_sse(client, "POST", "/v1/chat/completions", json=body) as source,
    ):
        events = list(source.iter_sse())
    assert events[-1].data == "[DONE]"
    error = json.loads(events[-2].data)["error"]
    assert (error["code"], error["ending"]) == ("duration_limit", "truncated")
