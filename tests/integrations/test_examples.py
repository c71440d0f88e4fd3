"""The examples (Flask, Django, FastAPI apps) under real servers, read by a client no one here
wrote (httpx-sse): the same streams as `sserelay serve`, whatever the framework."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from sserelay.testing.procs import ServerProcess
from tests.conftest import PROVIDER_KEY, Upstream

TRICKY = (
    "line one\nline two\n\n  two leading spaces\n\ndata: forged\n\n"
    "emoji 👩‍👩‍👧 <script>alert(1)</script> é"
)
REQUESTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "GET /completionChat": ("GET", "/completionChat", {}),
    "GET /completion": ("GET", "/completion", {}),
    "POST /completions/chat": ("POST", "/completions/chat", {}),
}


def ask(
    server: ServerProcess, endpoint: str, prompt: str
) -> tuple[httpx.Response, list[ServerSentEvent]]:
    """Stream one answer for `prompt` from `endpoint` ("GET /completionChat", ...)."""
    method, path, _ = REQUESTS[endpoint]
    kwargs: dict[str, Any] = (
        {"json": {"prompt": prompt}} if method == "POST" else {"params": {"prompt": prompt}}
    )
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        connect_sse(client, method, path, **kwargs) as source,
    ):
        assert source.response.status_code == 200, source.response.read()
        return source.response, list(source.iter_sse())


def text_of(events: list[ServerSentEvent]) -> str:
    assert events[-1].data == "[DONE]", "the stream must end with the [DONE] marker"
    assert all(e.event == "message" for e in events), [e for e in events if e.event != "message"]
    return "".join(e.data for e in events[:-1])


def records_with(upstream: Upstream, marker: str) -> list[dict[str, Any]]:
    return [r for r in upstream.requests() if marker in json.dumps(r["body"])]


@pytest.mark.parametrize("endpoint", list(REQUESTS))
def test_text_arrives_exactly_and_done_ends_it(served: ServerProcess, endpoint: str) -> None:
    """Newlines, leading spaces, emoji and markup arrive exactly, even when the upstream cuts
    its writes mid-line and mid-character, and `[DONE]` is the last event."""
    _, events = ask(served, endpoint, "[[scenario: split=1]] echo:" + TRICKY)
    assert text_of(events) == TRICKY


def test_a_token_equal_to_the_end_marker_does_not_end_the_stream(served: ServerProcess) -> None:
    """A model text of exactly "[DONE]" arrives as text; only the real end marker ends."""
    _, events = ask(served, "GET /completionChat", "echo:[DONE]")
    assert [e.data for e in events].count("[DONE]") == 1
    assert text_of(events) == "[DONE]"


def test_events_carry_ids_and_the_sse_headers(served: ServerProcess) -> None:
    """Every event has an id <stream>:<seq> counting from 1, the stream is named in a header,
    and the response is an uncached, unbuffered event stream."""
    response, events = ask(served, "GET /completionChat", "echo:a b c d")
    stream_id = response.headers["x-sserelay-stream"]
    assert [e.id for e in events] == [f"{stream_id}:{i}" for i in range(1, len(events) + 1)]
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"


@pytest.mark.parametrize(
    ("scenario", "code", "ending"),
    [
        ("die_after=2", "upstream_truncated", "truncated"),
        ("error_after=2", "upstream_error", "error"),
    ],
)
def test_mid_stream_failure_ends_with_typed_error_then_done(
    served: ServerProcess, scenario: str, code: str, ending: str
) -> None:
    """An upstream failure after the first byte ends the stream with `event: error` (code and
    ending in its JSON), then [DONE]: never a normal-looking end."""
    _, events = ask(served, "GET /completionChat", f"[[scenario: {scenario}]] echo:a b c d e f")
    assert events[-1].data == "[DONE]"
    assert events[-2].event == "error"
    error = json.loads(events[-2].data)["error"]
    assert (error["code"], error["ending"]) == (code, ending)
    assert all(e.event == "message" for e in events[:-2])


def test_failure_before_the_first_byte_keeps_its_http_status(served: ServerProcess) -> None:
    """An upstream 429 before streaming starts is a real 429 with Retry-After and an
    OpenAI-shaped error body in words."""
    reply = httpx.get(
        served.url + "/completionChat",
        params={"prompt": "[[scenario: status=429]] hi"},
        timeout=30,
    )
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "1"
    assert reply.json()["error"]["code"] == "rate_limited"


def test_reconnect_after_done_gets_204_and_no_second_completion(
    served: ServerProcess, upstream: Upstream
) -> None:
    """A browser reconnecting with Last-Event-ID after [DONE] gets 204 (EventSource stops), and
    the upstream sees the prompt once."""
    marker = secrets.token_hex(6)
    _, events = ask(served, "GET /completionChat", f"echo:once {marker}")
    again = httpx.get(
        served.url + "/completionChat",
        params={"prompt": f"echo:once {marker}"},
        headers={"Last-Event-ID": events[-1].id},
        timeout=30,
    )
    assert again.status_code == 204
    assert len(records_with(upstream, marker)) == 1


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "words"),
    [
        ("GET", "/completionChat", {}, 400, '"prompt" query parameter'),
        ("GET", "/completion", {"params": {"prompt": "  "}}, 400, "non-empty"),
        ("POST", "/completions/chat", {"content": b"prompt=hi"}, 415, "JSON"),
        (
            "POST",
            "/completions/chat",
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        ("POST", "/completions/chat", {"json": {"prompt": "x" * (2 << 20)}}, 413, "limit"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    served: ServerProcess, method: str, path: str, kwargs: dict[str, Any], status: int, words: str
) -> None:
    """The request rules of `sserelay serve`, with its OpenAI-shaped error bodies in words."""
    reply = httpx.request(method, served.url + path, timeout=30, **kwargs)
    assert reply.status_code == status
    assert words in reply.json()["error"]["message"]


def test_provider_key_reaches_only_the_upstream(served: ServerProcess, upstream: Upstream) -> None:
    """The key is sent upstream and appears in no response, header or line of server output,
    also when the upstream rejects it or fails."""
    marker = secrets.token_hex(6)
    seen: list[str] = []
    for prompt in [
        f"echo:{marker}",
        "[[scenario: status=401]] hi",
        "[[scenario: status=400]] hi",
        "[[scenario: error_after=1]] echo:a b c",
    ]:
        reply = httpx.get(served.url + "/completionChat", params={"prompt": prompt}, timeout=30)
        seen += [reply.text, str(reply.headers)]
    [record] = records_with(upstream, marker)
    assert record["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert not [text for text in seen if PROVIDER_KEY in text]
    assert PROVIDER_KEY not in served.output()


def test_client_that_leaves_gets_the_upstream_closed(
    served: ServerProcess, upstream: Upstream
) -> None:
    """A reader that goes away mid-answer gets the upstream request closed: at once under
    ASGI, at the next token's write under WSGI."""
    marker = secrets.token_hex(6)
    with (
        httpx.Client(base_url=served.url, timeout=30) as client,
        connect_sse(
            client,
            "GET",
            "/completionChat",
            params={"prompt": f"[[scenario: tokens=1000; rate=20]] {marker}"},
        ) as source,
    ):
        for _ in zip(range(3), source.iter_sse(), strict=False):
            pass
    for _ in range(100):
        [record] = records_with(upstream, marker)
        if record["disconnected"]:
            break
        time.sleep(0.1)
    assert record["disconnected"] and not record["completed"]


def test_the_page_its_client_and_the_apps_own_routes_are_served(served: ServerProcess) -> None:
    """GET / is a page, /static/sserelay.js the client library, and the host app's own route
    still answers next to sserelay's."""
    page = httpx.get(served.url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.startswith("<!DOCTYPE html>")
    client = httpx.get(served.url + "/static/sserelay.js", timeout=30)
    assert client.status_code == 200 and "export" in client.text
    assert httpx.get(served.url + "/health", timeout=30).json() == {"status": "ok"}
