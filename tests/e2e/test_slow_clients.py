"""A reader slower than the model: it gets a bounded buffer, is then dropped (and can resume),
and neither the upstream nor the other followers wait for it."""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import connect_sse

from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream, start_relay


@pytest.fixture(scope="module")
def impatient_relay(upstream: Upstream) -> Iterator[ServerProcess]:
    with start_relay(upstream.url, "--slow-client-timeout", "1") as relay:
        yield relay


def open_stalled_reader(relay: ServerProcess, path: str) -> socket.socket:
    """A raw HTTP client with a tiny receive buffer that then stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", relay.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


def test_a_reader_that_stops_is_dropped_while_others_finish(
    impatient_relay: ServerProcess, upstream: Upstream
) -> None:
    """A follower that stops reading is disconnected by sserelay once its buffer is full for
    the slow-client timeout; a second follower of the same stream gets everything, and the
    upstream is read to its end at full speed."""
    marker = secrets.token_hex(6)
    reply = httpx.post(
        impatient_relay.url + "/v1/streams",
        timeout=30,
        json={
            "messages": [
                {"role": "user", "content": f"[[scenario: tokens=30000; rate=6000]] {marker}"}
            ]
        },
    )
    stream_id = reply.json()["id"]
    stalled = open_stalled_reader(impatient_relay, f"/v1/streams/{stream_id}")
    try:
        with (
            httpx.Client(base_url=impatient_relay.url, timeout=60) as client,
            connect_sse(client, "GET", f"/v1/streams/{stream_id}") as source,
        ):
            events = list(source.iter_sse())
        assert events[-1].data == "[DONE]"
        assert len(events) > 30000
        # The stalled reader's connection is closed by the server: reading what is buffered
        # ends in EOF (or a reset), not in a wait for ever.
        stalled.settimeout(30)
        received = 0
        while True:
            try:
                data = stalled.recv(1 << 20)
            except ConnectionResetError:
                break
            if not data:
                break
            received += len(data)
        assert received < len(b"".join(e.data.encode() for e in events))
    finally:
        stalled.close()
    record = next(r for r in upstream.requests() if marker in json.dumps(r["body"]))
    for _ in range(50):
        if record["completed"]:
            break
        time.sleep(0.1)
        record = next(r for r in upstream.requests() if marker in json.dumps(r["body"]))
    assert record["completed"] and not record["disconnected"]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_stalled_client_pauses_its_upstream_instead_of_buffering_it(
    upstream: Upstream,
) -> None:
    """Straight pass-through: a client that stops reading stops sserelay reading its
    upstream, so an upstream as fast as it can be (tens of MB) neither completes nor fills
    the relay's memory while the client stalls."""
    env = {"SSERELAY_STREAM_LOG_CHAT_COMPLETIONS": "false"}
    with start_relay(upstream.url, "--slow-client-timeout", "60", env=env) as relay:
        marker = secrets.token_hex(6)
        body = json.dumps({
            "model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": f"[[scenario: tokens=300000]] {marker}"}],
        }).encode()  # fmt: skip
        before = _rss_kib(relay.proc.pid)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", relay.port))
        try:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
            time.sleep(3)  # the client reads nothing meanwhile
            record = next(r for r in upstream.requests() if marker in json.dumps(r["body"]))
            assert not record["completed"]
            assert _rss_kib(relay.proc.pid) - before < 16 * 1024
        finally:
            sock.close()
