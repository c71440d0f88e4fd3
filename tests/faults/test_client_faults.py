"""Clients that misbehave: leave at random points, read one byte a second, send 100 MB,
send their headers slowly. sserelay stays bounded in time and memory, closes what nobody
needs, and its output stays clean (scanned when each relay stops)."""

from __future__ import annotations

import contextlib
import random
import secrets
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable

import pytest

from tests.conftest import Upstream

from .conftest import Relay, record_of, upstream_closed, wait_for
from .endpoints import FAMILIES, prompt, run, start

# Where each family's generation goes when its client leaves (the disconnect policies).
CLOSED_WHEN_ABANDONED = {"article-get": True, "article-post": True, "streams": False,
                         "chat": False}


@pytest.mark.parametrize("family", FAMILIES)
def test_clients_leaving_at_random_points_are_handled_by_policy(
    relay_factory: Callable[..., Relay], upstream: Upstream, family: str
) -> None:
    """(h) Readers that disconnect after a random number of bytes (0 included): the article
    endpoints close the upstream (cancel), /v1/streams lets the generation finish (continue)
    and the gateway drains it for its usage; the relay keeps serving normally."""
    relay = relay_factory()
    rng = random.Random(f"faults-{family}")
    markers = []
    with relay.client() as client:
        for _ in range(4):
            marker = secrets.token_hex(6)
            markers.append(marker)
            response = start(client, family, prompt("tokens=400; rate=400", marker))
            assert response.status_code == 200
            wanted, got = rng.randrange(0, 4000), 0
            for chunk in response.iter_raw():
                got += len(chunk)
                if got >= wanted:
                    break
            response.close()
        for marker in markers:
            if CLOSED_WHEN_ABANDONED[family]:
                assert not upstream_closed(upstream, marker)["completed"]
            else:
                wait_for(lambda m=marker: record_of(upstream, m)["completed"],  # type: ignore[misc]
                         f"{marker}'s generation to finish")
        seen = run(client, family, prompt("tokens=5", "still fine"))
    assert (seen.status, seen.ending) == (200, "done")


def _slow_reader(relay: Relay, request: bytes) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", relay.port))
    sock.sendall(request)
    return sock


def _request(family: str, marker: str) -> bytes:
    # Several MB more than the kernel's socket buffers (4 MB on loopback) hold, so that the
    # relay's writes really block: ~45 bytes an event on the article's format, ~250 in chat.
    scenario = "tokens=150000; rate=20000" if family == "article-get" else "tokens=30000; rate=6000"
    text = prompt(scenario, marker)
    if family == "article-get":
        from urllib.parse import quote

        return (f"GET /completionChat?prompt={quote(text)} HTTP/1.1\r\nHost: x\r\n"
                "Accept: text/event-stream\r\n\r\n").encode()
    import orjson

    body = orjson.dumps({"model": "fake-chat", "stream": True,
                         "messages": [{"role": "user", "content": text}]})
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.mark.parametrize("family", ["article-get", "chat"])
def test_a_reader_at_one_byte_a_second_is_dropped_and_nobody_waits_for_it(
    relay_factory: Callable[..., Relay], upstream: Upstream, family: str
) -> None:
    """(i) A client reading one byte per second: once its buffers are full it is dropped
    (slow-client limit), its upstream is closed or drained instead of held, another client
    meanwhile gets its whole answer, and the dropped one's connection ends without [DONE]."""
    relay = relay_factory("--max-duration", "120")
    marker = secrets.token_hex(6)
    sock = _slow_reader(relay, _request(family, marker))
    try:
        with relay.client() as client:
            other = run(client, family, prompt("tokens=50", "meanwhile"))
        assert (other.status, other.ending) == (200, "done")
        sock.settimeout(30)
        for _ in range(60):  # one byte a second, until the upstream is let go of
            sock.recv(1)
            record = record_of(upstream, marker)
            if record["disconnected"] or record["completed"]:
                break
            time.sleep(1)
        else:
            raise AssertionError("the slow reader's upstream request was held on to")
        tail = b""
        while chunk := sock.recv(1 << 16):  # the rest: ends, because the relay hung up
            tail = (tail + chunk)[-4096:]
        assert b"[DONE]" not in tail
    finally:
        sock.close()


def _rss_growth_while(relay: Relay, action: Callable[[], None]) -> int:
    before = relay.rss_kib()
    action()
    return relay.rss_kib() - before


def _send_huge(relay: Relay, head: bytes, chunked: bool) -> bytes:
    """Send `head` then up to 100 MB of body in a thread, reading the answer meanwhile;
    returns the answer's first bytes once the relay has answered and hung up."""
    sock = socket.create_connection(("127.0.0.1", relay.port))
    sock.settimeout(30)
    sock.sendall(head)
    piece = b"x" * (1 << 20)
    if chunked:
        piece = b"%x\r\n%s\r\n" % (len(piece), piece)

    def send() -> None:
        try:
            for _ in range(100):
                sock.sendall(piece)
        except OSError:
            pass  # the relay closed the connection: what it should do

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    sender.join(30)
    assert not sender.is_alive(), "the upload was never cut off"
    sock.close()
    return answer


@pytest.mark.parametrize(
    "path", ["/completions/chat", "/v1/streams", "/v1/chat/completions", "/v1/messages"]
)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_100_mb_body_gets_413_without_being_buffered(
    relay_factory: Callable[..., Relay], path: str, chunked: bool
) -> None:
    """(j) A 100 MB body: 413 in words, the connection closed so the upload stops, and the
    relay's memory does not grow by anything like the body (RSS from /proc)."""
    relay = relay_factory("--max-gateway-body-bytes", "4194304")
    length = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % (100 << 20)
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\n\r\n" % (
        path.encode(), length)
    answers: list[bytes] = []
    growth = _rss_growth_while(relay, lambda: answers.append(_send_huge(relay, head, chunked)))
    answer = relay.keep(answers[0].decode("latin-1"))
    print(f"100 MB to {path} ({'chunked' if chunked else 'declared'}): RSS +{growth} KiB")
    assert answer.startswith("HTTP/1.1 413 ")
    assert "larger than the limit" in answer
    assert growth < 16 * 1024, f"RSS grew by {growth} KiB"


def _closed_by_server(sock: socket.socket, trickle: bytes) -> bytes:
    """Send `trickle` a byte at a time until the server answers or hangs up; what it said."""
    for i in range(200):
        if i < len(trickle):
            try:
                sock.send(trickle[i : i + 1])
            except OSError:
                return b""
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            try:
                answer = sock.recv(4096)
            except ConnectionResetError:
                return b""
            return answer
    raise AssertionError("the server kept the slow connection open")


def test_slow_headers_are_cut_off_at_the_header_timeout(
    relay_factory: Callable[..., Relay],
) -> None:
    """(k) Slowloris: a client sending its headers a byte at a time, or nothing at all, gets
    408 and a closed connection at the header timeout, while others are served."""
    relay = relay_factory("--header-timeout", "1")
    silent = socket.create_connection(("127.0.0.1", relay.port))
    slow = socket.create_connection(("127.0.0.1", relay.port))
    try:
        with relay.client() as client:
            # A stream lasting longer than the header timeout is not cut by it.
            assert run(client, "article-get", prompt("tokens=30; rate=15", "hi")).ending == "done"
        trickle = b"GET /completionChat?prompt=hi HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        for sock, sent in ((slow, trickle), (silent, b"")):
            answer = _closed_by_server(sock, sent)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
            sock.settimeout(10)  # then the connection ends (a hang raises socket.timeout)
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(4096):
                    pass
    finally:
        silent.close()
        slow.close()



_MODELS = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send `request` and read one whole response (its body sized by Content-Length)."""
    sock.sendall(request)
    sock.settimeout(10)
    answer = b""
    while b"\r\n\r\n" not in answer:
        part = sock.recv(4096)
        if not part:
            return answer  # closed
        answer += part
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_an_idle_connection_is_kept_past_the_header_timeout_for_its_next_request(
    relay_factory: Callable[..., Relay],
) -> None:
    """Between requests a kept-alive connection is idle, not slow: after three header
    timeouts without a byte, the client's next request on it is answered, not met by a 408
    written into the idle connection or a close."""
    relay = relay_factory("--header-timeout", "0.5")
    with socket.create_connection(("127.0.0.1", relay.port)) as sock:
        assert _exchange(sock, _MODELS).startswith(b"HTTP/1.1 200 ")
        time.sleep(1.5)
        assert _exchange(sock, _MODELS).startswith(b"HTTP/1.1 200 ")


def test_an_idle_connection_is_closed_without_a_word_at_the_keepalive_timeout(
    relay_factory: Callable[..., Relay],
) -> None:
    """`--keepalive-timeout`: an idle connection is closed with nothing written to it (a
    client's pool sees the close; no stray response)."""
    relay = relay_factory("--keepalive-timeout", "1", "--header-timeout", "60")
    with socket.create_connection(("127.0.0.1", relay.port)) as sock:
        assert _exchange(sock, _MODELS).startswith(b"HTTP/1.1 200 ")
        sock.settimeout(30)  # the keep-alive timeout must close it well before
        assert sock.recv(4096) == b""


def test_slow_headers_of_the_next_request_on_a_kept_alive_connection_get_408(
    relay_factory: Callable[..., Relay],
) -> None:
    """Slowloris after a first request: the next request's headers, sent a byte at a time,
    are cut off at the header timeout, counted from their first byte."""
    relay = relay_factory("--header-timeout", "1")
    with socket.create_connection(("127.0.0.1", relay.port)) as sock:
        assert _exchange(sock, _MODELS).startswith(b"HTTP/1.1 200 ")
        answer = _closed_by_server(sock, b"\r\nGET /v1/models HTTP/1.1\r\nX-Slow: " + b"a" * 200)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")


def test_a_slow_request_pipelined_behind_a_stream_gets_408_after_the_stream_not_in_it(
    relay_factory: Callable[..., Relay],
) -> None:
    """Headers that began behind a response still being streamed, and never finished, get
    the 408 once that response is whole (not written into it, and not never)."""
    relay = relay_factory("--header-timeout", "1")
    query = urllib.parse.quote(prompt("tokens=30; rate=15", "hi"))  # ~2 s: two timeouts
    first = f"GET /completionChat?prompt={query} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", relay.port)) as sock:
        sock.sendall(first + b"GET /v1/models HTTP/1.1\r\nX-Slow: a")
        sock.settimeout(30)  # a connection left open for ever fails here
        answer = b""
        while part := sock.recv(65536):
            answer += part
    relay.keep(answer.decode("utf-8", "replace"))
    stream, _, rest = answer.partition(b"\r\n0\r\n\r\n")
    assert stream.startswith(b"HTTP/1.1 200 ") and b"data: [DONE]" in stream
    assert rest.startswith(b"HTTP/1.1 408 ")


def test_a_body_that_trickles_gets_408_at_the_body_timeout(
    relay_factory: Callable[..., Relay],
) -> None:
    """A client that declares a body and sends only part of it gets 408 in words and a
    closed connection once the body timeout passes, not a handler waiting for ever."""
    relay = relay_factory("--body-timeout", "1")
    sock = socket.create_connection(("127.0.0.1", relay.port))
    sock.settimeout(30)
    try:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mo")
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                answer += chunk
    finally:
        sock.close()
    text = relay.keep(answer.decode("latin-1"))
    assert text.startswith("HTTP/1.1 408 ")
    assert "did not arrive within 1 s" in text
