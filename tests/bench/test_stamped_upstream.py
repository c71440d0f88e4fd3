"""The benchmark's upstream against real clients: the official openai SDK, raw sockets, and
the test suite's fake upstream as the reference for its bytes."""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from sserelay.testing.procs import ServerProcess

_CHAT = {
    "model": "gpt-4o-mini",
    "stream": True,
    "messages": [{"role": "user", "content": "[[scenario: tokens=4; rate=200; stamp=1]] hi"}],
}


def _serve(module: str) -> ServerProcess:
    return ServerProcess([sys.executable, "-m", module, "--port", "{port}"])


@pytest.fixture(scope="module")
def stamped() -> Iterator[ServerProcess]:
    with _serve("sserelay.bench.stamped_upstream") as server:
        yield server


@pytest.fixture(scope="module")
def fake() -> Iterator[ServerProcess]:
    with _serve("sserelay.testing.fake_upstream") as server:
        yield server


def _normalised(body: bytes) -> bytes:
    """The body with what differs between any two replies blanked: ids, times, stamps."""
    body = re.sub(rb'"id":"[^"]*"', b'"id":""', body)
    body = re.sub(rb'"created":\d+', b'"created":0', body)
    return re.sub(rb"\d{19}", b"STAMP", body)


def test_streams_the_fake_upstreams_bytes_for_the_same_request(
    stamped: ServerProcess, fake: ServerProcess
) -> None:
    """Chat and legacy streams, with and without the usage chunk, carry exactly the bytes the
    test suite's fake sends (ids, times and stamps aside): relays do the same work on both."""
    legacy = {"model": "gpt-3.5-turbo-instruct", "stream": True,
              "prompt": "[[scenario: tokens=3; stamp=1]] hi"}  # fmt: skip
    usage = {**_CHAT, "stream_options": {"include_usage": True}}
    for path, body in [("/v1/chat/completions", _CHAT), ("/v1/completions", legacy),
                       ("/v1/chat/completions", usage)]:  # fmt: skip
        ours = httpx.post(stamped.url + path, json=body, timeout=10)
        theirs = httpx.post(fake.url + path, json=body, timeout=10)
        assert ours.status_code == theirs.status_code == 200
        assert ours.headers["content-type"] == theirs.headers["content-type"]
        assert _normalised(ours.content) == _normalised(theirs.content), path
        assert ours.content.count(b"data: [DONE]") == 1


def test_openai_sdk_reads_stamped_tokens_that_are_send_times(stamped: ServerProcess) -> None:
    """Each content token is the time it was sent, in ns, and the SDK parses the stream."""
    client = openai.OpenAI(base_url=stamped.url + "/v1", api_key="sk-unused")
    before = time.time_ns()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=_CHAT["messages"], stream=True  # type: ignore[arg-type]
    )
    texts = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    stamps = [int(t) for t in texts]
    assert len(stamps) == 4
    assert before <= stamps[0] <= stamps[-1] <= time.time_ns()
    assert stamps == sorted(stamps)


def test_serves_several_requests_on_one_kept_alive_connection(stamped: ServerProcess) -> None:
    """nginx and sserelay pool their upstream connections: a second request on the same
    connection gets its own whole stream."""
    with httpx.Client(base_url=stamped.url, timeout=10) as client:
        for _ in range(3):
            reply = client.post("/v1/chat/completions", json=_CHAT)
            assert reply.status_code == 200
            assert reply.content.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**_CHAT, "messages": [{"role": "user", "content": "[[scenario: error_after=1]] x"}]},
         "serves only tokens, rate and stamp, not error_after"),
        ({**_CHAT, "stream": False}, "streams only"),
        ({"stream": True, "messages": []}, "model"),
    ],
)  # fmt: skip
def test_refuses_what_it_does_not_serve_with_a_400_that_says_why(
    stamped: ServerProcess, body: dict[str, object], message: str
) -> None:
    """Scripted faults belong to the fake upstream: asked for one, this says so in words."""
    reply = httpx.post(stamped.url + "/v1/chat/completions", json=body, timeout=10)
    assert reply.status_code == 400
    assert message in reply.json()["error"]["message"]


def test_unknown_paths_and_malformed_requests_get_clear_errors(stamped: ServerProcess) -> None:
    """A path it does not serve is a 404 naming it, in OpenAI's error shape; bytes that are
    not HTTP get a 400."""
    reply = httpx.post(stamped.url + "/v1/embeddings", json={}, timeout=10)
    assert reply.status_code == 404
    assert "/v1/embeddings" in reply.json()["error"]["message"]
    assert reply.json()["error"]["type"] == "invalid_request_error"
    with socket.create_connection((stamped.host, stamped.port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")


def test_a_client_that_leaves_mid_stream_does_not_stop_the_server(
    stamped: ServerProcess,
) -> None:
    """A dropped connection cancels its timer; the next stream is served as usual."""
    slow = {**_CHAT, "messages": [{"role": "user",
                                   "content": "[[scenario: tokens=1000; rate=5; stamp=1]] x"}]}
    with httpx.stream("POST", stamped.url + "/v1/chat/completions", json=slow,
                      timeout=10) as reply:  # fmt: skip
        assert next(reply.iter_bytes()).startswith(b"data: ")
    reply = httpx.post(stamped.url + "/v1/chat/completions", json=_CHAT, timeout=10)
    assert reply.content.count(b"data: [DONE]") == 1
