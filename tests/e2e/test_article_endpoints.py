"""The article's endpoints, end to end: a real sserelay process relaying from a real upstream,
read by a client no one here wrote (httpx-sse)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse

from tests.conftest import PROVIDER_KEY, Upstream, start_relay

TRICKY = (
    "line one\nline two\n\n  two leading spaces\n\ndata: forged\n\n"
    "emoji 👩‍👩‍👧 <script>alert(1)</script> é"
)


def stream(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, list[ServerSentEvent]]:
    with connect_sse(client, method, url, **kwargs) as source:
        source.response.raise_for_status()
        return source.response, list(source.iter_sse())


def text_of(events: list[ServerSentEvent]) -> str:
    assert events[-1].data == "[DONE]", "stream must end with the [DONE] marker"
    assert all(e.event == "message" for e in events), [e for e in events if e.event != "message"]
    return "".join(e.data for e in events[:-1])


def prompt_of(record: dict[str, Any]) -> str:
    body = record["body"]
    if not isinstance(body, dict):
        return ""
    return str(body["messages"][-1]["content"] if "messages" in body else body.get("prompt"))


def last_request(upstream: Upstream) -> dict[str, Any]:
    return upstream.requests()[-1]


@pytest.mark.parametrize(
    "scenario", ["", "[[scenario: split=1]] ", "[[scenario: crlf=1; split=1]] "]
)
def test_get_chat_relays_text_exactly(client: httpx.Client, scenario: str) -> None:
    """GET /completionChat delivers newlines, leading spaces, emoji and markup exactly, even when
    the upstream splits writes mid-line and mid-character or uses CRLF."""
    _, events = stream(
        client, "GET", "/completionChat", params={"prompt": scenario + "echo:" + TRICKY}
    )
    assert text_of(events) == TRICKY


def test_get_legacy_completion_relays_choice_text(client: httpx.Client) -> None:
    """GET /completion relays the legacy Completions `choices[0].text`, then [DONE]."""
    _, events = stream(client, "GET", "/completion", params={"prompt": "echo:" + TRICKY})
    assert text_of(events) == TRICKY


def test_post_prompt_streams_sse(client: httpx.Client, upstream: Upstream) -> None:
    """POST /completions/chat with {"prompt"} streams SSE with the exact text."""
    _, events = stream(client, "POST", "/completions/chat", json={"prompt": "echo:" + TRICKY})
    assert text_of(events) == TRICKY
    body = last_request(upstream)["body"]
    assert body["messages"] == [{"role": "user", "content": "echo:" + TRICKY}]
    assert body["stream"] is True and body["model"] == "fake-chat"


def test_post_messages_are_sent_as_history(client: httpx.Client, upstream: Upstream) -> None:
    """POST /completions/chat with {"messages"} passes the conversation upstream unchanged."""
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "echo:again"},
    ]
    _, events = stream(client, "POST", "/completions/chat", json={"messages": messages})
    assert text_of(events) == "again"
    assert last_request(upstream)["body"]["messages"] == messages


def test_carriage_returns_arrive_as_line_feeds(client: httpx.Client) -> None:
    """SSE cannot carry CR in data: a CR or CRLF in the text arrives as LF (documented)."""
    _, events = stream(client, "GET", "/completionChat", params={"prompt": "echo:a\rb\r\nc"})
    assert text_of(events) == "a\nb\nc"


def test_token_equal_to_end_marker_does_not_end_the_stream(client: httpx.Client) -> None:
    """A model text of exactly "[DONE]" is sent so it cannot be mistaken for the end marker."""
    _, events = stream(client, "GET", "/completionChat", params={"prompt": "echo:[DONE]"})
    assert [e.data for e in events].count("[DONE]") == 1
    assert text_of(events) == "[DONE]"


def test_events_carry_stream_ids_and_headers(client: httpx.Client) -> None:
    """Every event has an id <stream>:<seq> counting up from 1, the stream is named in a header,
    and the SSE headers are sent."""
    response, events = stream(client, "GET", "/completionChat", params={"prompt": "echo:a b c"})
    stream_id = response.headers["x-sserelay-stream"]
    assert [e.id for e in events] == [f"{stream_id}:{i}" for i in range(1, len(events) + 1)]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"


def test_reconnect_after_done_gets_204_and_no_second_completion(
    client: httpx.Client, upstream: Upstream
) -> None:
    """A browser reconnecting after [DONE] (with Last-Event-ID) gets 204, and the upstream sees
    exactly one request for the prompt."""
    prompt = f"echo:once {time.time_ns()}"
    _, events = stream(client, "GET", "/completionChat", params={"prompt": prompt})
    again = client.get(
        "/completionChat", params={"prompt": prompt}, headers={"Last-Event-ID": events[-1].id}
    )
    assert again.status_code == 204
    seen = [r for r in upstream.requests() if prompt_of(r) == prompt]
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        (429, 429, "rate_limited"),
        (500, 502, "upstream_unavailable"),
        (503, 503, "upstream_unavailable"),
        (400, 400, "upstream_rejected"),
    ],
)
def test_upstream_error_before_first_byte_keeps_http_status(
    client: httpx.Client, status: int, expected: int, code: str
) -> None:
    """An upstream 4xx/5xx before streaming starts becomes a real HTTP status with an
    OpenAI-shaped error body in words (429 keeps Retry-After)."""
    reply = client.get("/completionChat", params={"prompt": f"[[scenario: status={status}]] hi"})
    assert reply.status_code == expected
    error = reply.json()["error"]
    assert error["code"] == code and len(error["message"]) > 10
    if status == 429:
        assert reply.headers["retry-after"] == "1"


def test_upstream_key_rejected_is_a_502_that_names_sserelays_credentials(
    upstream: Upstream,
) -> None:
    """If the upstream rejects the provider key, the client gets 502 (not 401: the client cannot
    fix it) and the key is not echoed."""
    with start_relay(upstream.url, env={"OPENAI_API_KEY": "sk-wrong-key-000000000000"}) as relay:
        reply = httpx.get(relay.url + "/completionChat", params={"prompt": "hi"}, timeout=30)
        output = relay.output()
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "upstream_auth"
    assert "sk-wrong" not in reply.text and "sk-wrong" not in output


def test_wrong_content_type_from_upstream_is_a_failure(client: httpx.Client) -> None:
    """An upstream that answers 200 with a non-SSE content type is an error, not an empty answer."""
    reply = client.get(
        "/completionChat", params={"prompt": "[[scenario: content_type=text/plain]] hi"}
    )
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "upstream_bad_content_type"


@pytest.mark.parametrize(
    ("scenario", "code", "ending"),
    [
        ("die_after=3", "upstream_truncated", "truncated"),
        ("error_after=2", "upstream_error", "error"),
        ("malformed_after=2", "upstream_malformed", "error"),
    ],
)
def test_mid_stream_failure_ends_with_typed_error_then_done(
    client: httpx.Client, scenario: str, code: str, ending: str
) -> None:
    """A failure after the first byte ends the stream with `event: error` (code and ending in
    its JSON) followed by [DONE]: never a silent, normal-looking end."""
    _, events = stream(
        client,
        "GET",
        "/completionChat",
        params={"prompt": f"[[scenario: {scenario}]] echo:a b c d e f g h"},
    )
    assert events[-1].data == "[DONE]"
    assert events[-2].event == "error"
    error = json.loads(events[-2].data)["error"]
    assert (error["code"], error["ending"]) == (code, ending)
    assert all(e.event == "message" for e in events[:-2])


def test_client_disconnect_closes_the_upstream_request(
    client: httpx.Client, upstream: Upstream
) -> None:
    """When the reader goes away mid-answer, sserelay closes the upstream request."""
    marker = f"bye {time.time_ns()}"
    with connect_sse(
        client,
        "GET",
        "/completionChat",
        params={"prompt": f"[[scenario: tokens=1000; rate=20]] {marker}"},
    ) as source:
        for _ in zip(range(3), source.iter_sse(), strict=False):
            pass
    for _ in range(100):
        record = next(r for r in upstream.requests() if marker in prompt_of(r))
        if record["disconnected"]:
            break
        time.sleep(0.1)
    assert record["disconnected"] and not record["completed"]


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "words"),
    [
        ("GET", "/completionChat", {}, 400, "prompt"),
        ("GET", "/completion", {"params": {"prompt": "  "}}, 400, "non-empty"),
        (
            "POST",
            "/completions/chat",
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        ("POST", "/completions/chat", {"json": ["a"]}, 400, "JSON object"),
        ("POST", "/completions/chat", {"json": {}}, 400, '"prompt"'),
        (
            "POST",
            "/completions/chat",
            {"json": {"messages": [{"role": "robot", "content": "x"}]}},
            400,
            "role",
        ),
        ("POST", "/completions/chat", {"content": b"prompt=hi"}, 415, "JSON"),
        ("POST", "/completions/chat", {"json": {"prompt": "x" * (2 << 20)}}, 413, "limit"),
        ("DELETE", "/completionChat", {}, 405, "not allowed"),
        ("GET", "/nowhere", {}, 404, "nothing at"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    client: httpx.Client, method: str, url: str, kwargs: dict[str, Any], status: int, words: str
) -> None:
    """Missing prompt, broken JSON, wrong shapes, wrong method, oversize bodies: a 4xx whose
    OpenAI-shaped error message says what is wrong."""
    reply = client.request(method, url, **kwargs)
    assert reply.status_code == status
    assert words in reply.json()["error"]["message"]
    assert "Traceback" not in reply.text


def test_provider_key_reaches_only_the_upstream(
    client: httpx.Client, upstream: Upstream, relay: Any
) -> None:
    """The provider key is sent upstream and appears in no response, header or log line."""
    seen: list[str] = []
    for url, params in [
        ("/completionChat", {"prompt": "echo:hi"}),
        ("/completionChat", {"prompt": "[[scenario: status=401]] hi"}),
        ("/completionChat", {"prompt": "[[scenario: error_after=1]] x y"}),
        ("/", {}),
    ]:
        reply = client.get(url, params=params)
        seen += [reply.text, str(reply.headers)]
    assert last_request(upstream)["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    for text in [*seen, relay.output()]:
        assert PROVIDER_KEY not in text


def test_cors_is_same_origin_by_default(client: httpx.Client) -> None:
    """With no allow-list, no CORS header is sent, whatever Origin the request claims, and
    a preflight is refused."""
    reply = client.get(
        "/completionChat", params={"prompt": "echo:x"}, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in reply.headers
    preflight = client.options("/completionChat", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET",
    })
    assert preflight.status_code >= 400
    assert not [h for h in preflight.headers if h.startswith("access-control-")]


def test_cors_allow_list_admits_only_listed_origins(upstream: Upstream) -> None:
    """A configured origin is allowed (preflight and stream); any other is not reflected."""
    good = "https://app.example.com"
    with (
        start_relay(upstream.url, "--cors-origin", good) as relay,
        httpx.Client(base_url=relay.url, timeout=30) as http_client,
    ):
        ok = http_client.options(
            "/completions/chat",
            headers={
                "Origin": good,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        bad = http_client.get(
            "/completionChat",
            params={"prompt": "echo:x"},
            headers={"Origin": "https://evil.example"},
        )
        streamed = http_client.get(
            "/completionChat", params={"prompt": "echo:x"}, headers={"Origin": good}
        )
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == good
    assert "access-control-allow-origin" not in bad.headers
    assert streamed.headers["access-control-allow-origin"] == good
