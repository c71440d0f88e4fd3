"""The fake upstream, run as a real process and driven by the official openai SDK and httpx."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from sserelay.testing.fake_upstream import split_event, tokenize
from sserelay.testing.procs import ServerProcess

pytestmark = pytest.mark.timeout(60)

FAKE_UPSTREAM = [sys.executable, "-m", "sserelay.testing.fake_upstream", "--port", "{port}"]

# Newlines that would forge SSE events if relayed raw, markup, a 7-codepoint ZWJ emoji.
TRICKY = "Hi <script>alert(1)</script>\n\ndata: x\r\nid: 7\n👩‍👩‍👧‍👦 café 日本語\n"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerProcess]:
    """One fake upstream process for the module; tests tell their requests apart by an
    `x-test-id` header, so none of them needs a reset."""
    with ServerProcess(FAKE_UPSTREAM) as server:
        yield server


@pytest.fixture
def client(upstream: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-test", max_retries=0) as sdk:
        yield sdk


def _headers(scenario: str | None = None, test_id: str | None = None) -> dict[str, str]:
    headers = {"x-test-id": test_id or uuid.uuid4().hex}
    if scenario is not None:
        headers["X-Fake-Scenario"] = scenario
    return headers


def _chat_stream(
    client: openai.OpenAI, text: str, scenario: str | None = None, **kwargs: Any
) -> list[ChatCompletionChunk]:
    with client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        stream=True,
        extra_headers=_headers(scenario),
        **kwargs,
    ) as stream:
        return list(stream)


def _content(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _wait_for_record(
    url: str, test_id: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The record of the request tagged `test_id`, once `ready` holds for it."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for record in httpx.get(url + "/_fake/requests").json():
            if record["headers"].get("x-test-id") == test_id and ready(record):
                return record  # type: ignore[no-any-return]
        time.sleep(0.02)
    pytest.fail(f"no finished record for request {test_id}")


@pytest.mark.parametrize(
    "scenario", [None, "split=1", "crlf=1", "split=1; crlf=1; keepalive=1", "rate=500"]
)
def test_chat_stream_echoes_text_exactly(client: openai.OpenAI, scenario: str | None) -> None:
    """An `echo:` chat stream delivers the text verbatim, in real OpenAI chunk format."""
    chunks = _chat_stream(client, "echo:" + TRICKY, scenario)
    assert _content(chunks) == TRICKY
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert chunks[-1].choices[0].delta.content is None
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {(c.system_fingerprint, c.service_tier) for c in chunks} == {("fp_fake0001", "default")}
    assert len(chunks) == len(tokenize(TRICKY)) + 2


def test_prompt_prefix_scripts_the_reply(client: openai.OpenAI) -> None:
    """A `[[scenario: ...]]` prompt prefix works like the header and is not echoed."""
    assert _content(_chat_stream(client, "[[scenario: tokens=3]] hi")) == "tok0 tok1 tok2 "
    assert _content(_chat_stream(client, "[[scenario: crlf=1]] echo:a\nb")) == "a\nb"


def test_default_reply_quotes_the_prompt(client: openai.OpenAI) -> None:
    """Without `echo:` the reply is `You said: <prompt>`."""
    assert _content(_chat_stream(client, "hello there")) == "You said: hello there"


def test_stamp_tokens_are_send_times(client: openai.OpenAI) -> None:
    """With stamp=1 every token is a nanosecond timestamp, for latency measurement."""
    before = time.time_ns()
    stamps = [int(t) for t in _content(_chat_stream(client, "x", "tokens=5; stamp=1")).split()]
    assert len(stamps) == 5
    assert before <= stamps[0]
    assert stamps == sorted(stamps)


def test_usage_chunk_with_include_usage(client: openai.OpenAI) -> None:
    """include_usage puts usage null on every chunk and adds a final choices-less usage chunk."""
    chunks = _chat_stream(client, "echo:one two three", stream_options={"include_usage": True})
    *body, last = chunks
    assert all(c.usage is None and c.choices for c in body)
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == len(tokenize("one two three"))
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


def test_max_tokens_cuts_with_finish_reason_length(client: openai.OpenAI) -> None:
    """max_tokens truncates the reply and the finish reason becomes `length`."""
    chunks = _chat_stream(client, "echo:" + TRICKY, max_tokens=3)
    assert _content(chunks) == "".join(tokenize(TRICKY)[:3])
    assert chunks[-1].choices[0].finish_reason == "length"


def test_legacy_completions_stream(client: openai.OpenAI) -> None:
    """/v1/completions streams text_completion chunks whose texts join to the reply."""
    with client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="echo:" + TRICKY, stream=True
    ) as stream:
        chunks = list(stream)
    assert {c.object for c in chunks} == {"text_completion"}
    assert "".join(c.choices[0].text for c in chunks) == TRICKY
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_non_stream_chat_and_legacy(client: openai.OpenAI) -> None:
    """Without stream the reply is one chat.completion / text_completion object with usage."""
    chat = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "echo:" + TRICKY}]
    )
    assert chat.object == "chat.completion"
    assert chat.choices[0].message.content == TRICKY
    assert chat.usage is not None
    assert chat.usage.completion_tokens == len(tokenize(TRICKY))
    legacy = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="echo:abc")
    assert legacy.choices[0].text == "abc"
    assert legacy.choices[0].finish_reason == "stop"


def test_models_list(client: openai.OpenAI) -> None:
    """GET /v1/models lists the fake's models."""
    assert "gpt-4o-mini" in {m.id for m in client.models.list()}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
    ],
)
def test_scripted_status_raises_sdk_error(
    client: openai.OpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    """status=CODE answers an OpenAI-shaped error the SDK maps to its exception class."""
    with pytest.raises(error) as caught:
        _chat_stream(client, "echo:x", f"status={status}")
    assert caught.value.status_code == status
    assert caught.value.body is not None
    assert caught.value.code == {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "1"


def test_bad_scenario_is_a_400(client: openai.OpenAI) -> None:
    """A scenario typo is refused loudly instead of being ignored."""
    with pytest.raises(openai.BadRequestError, match="bad scenario item"):
        _chat_stream(client, "x", "tokens=3; nonsense=1")


def test_error_after_sends_an_in_stream_error(client: openai.OpenAI) -> None:
    """error_after=N sends OpenAI's in-stream error event, which the SDK raises as APIError."""
    received: list[ChatCompletionChunk] = []
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers=_headers("tokens=5; error_after=2"),
    )
    with stream, pytest.raises(openai.APIError, match="The server had an error"):
        for chunk in stream:
            received.append(chunk)
    assert _content(received) == "tok0 tok1 "


def _raw_stream(url: str, headers: dict[str, str], text: str = "x") -> httpx.Response:
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": text}]}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers)


def test_wire_details_in_raw_bytes(upstream: ServerProcess) -> None:
    """keepalive, malformed_after, crlf and content_type show up on the wire as scripted."""
    response = _raw_stream(upstream.url, _headers("tokens=2; keepalive=1; malformed_after=1"))
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content.count(b": keep-alive\n\n") == 2
    assert b"\n\ndata: {not json\n\n" in response.content
    assert response.content.endswith(b"\n\ndata: [DONE]\n\n")
    crlf = _raw_stream(upstream.url, _headers("tokens=2; crlf=1")).content
    assert crlf.count(b"\n") == crlf.count(b"\r\n") == 10
    wrong = _raw_stream(upstream.url, _headers("content_type=text/plain"))
    assert wrong.status_code == 200
    assert wrong.headers["content-type"] == "text/plain"


def test_split_event_cuts_inside_line_and_character() -> None:
    """split_event cuts the field name, a multi-byte character and a CRLF pair."""
    event = 'data: {"c":"é"}\r\n\r\n'.encode()
    pieces = split_event(event)
    assert b"".join(pieces) == event
    assert pieces[0] == b"dat"
    assert any(p.endswith(b"\xc3") for p in pieces)
    assert pieces[-2].endswith(b"\r") and pieces[-1] == b"\n"
    assert b"".join(split_event(b"data: [DONE]\n\n")) == b"data: [DONE]\n\n"


def test_die_after_leaves_an_incomplete_chunked_body(upstream: ServerProcess) -> None:
    """die_after=N drops the connection mid-body: the client sees an incomplete read."""
    test_id = uuid.uuid4().hex
    lines: list[str] = []
    with httpx.Client(base_url=upstream.url) as http:
        body = {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        }
        with (
            http.stream(
                "POST", "/v1/chat/completions", json=body, headers=_headers("die_after=2", test_id)
            ) as response,
            pytest.raises(httpx.RemoteProtocolError),
        ):
            lines.extend(response.iter_lines())
    assert [line for line in lines if line.startswith("data: ")][-1].count('"content":"') == 1
    assert not any("[DONE]" in line for line in lines)
    record = _wait_for_record(upstream.url, test_id, lambda r: r["finished_at"] is not None)
    assert record["content_chunks"] == 2
    assert not record["completed"]


@pytest.mark.parametrize("scenario", ["tokens=100000; rate=50", "stall_after=2"])
def test_client_closing_mid_stream_is_recorded(
    upstream: ServerProcess, client: openai.OpenAI, scenario: str
) -> None:
    """A client that closes mid-stream (streaming or stalled) is recorded as disconnected."""
    test_id = uuid.uuid4().hex
    with client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers=_headers(scenario, test_id),
    ) as stream:
        # range first: zip must not pull a fourth chunk from a stalled stream.
        first = [chunk for _, chunk in zip(range(3), stream, strict=False)]
    assert len(first) == 3
    record = _wait_for_record(upstream.url, test_id, lambda r: r["finished_at"] is not None)
    assert record["disconnected"]
    assert record["disconnected_at"] is not None
    assert not record["completed"]
    assert record["content_chunks"] < 100000


def test_client_leaving_during_first_delay_is_recorded(upstream: ServerProcess) -> None:
    """A client that gives up before the first byte is recorded as disconnected, unanswered."""
    test_id = uuid.uuid4().hex
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            upstream.url + "/v1/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
            headers=_headers("first_delay=30", test_id),
            timeout=httpx.Timeout(5.0, read=0.2),
        )
    record = _wait_for_record(upstream.url, test_id, lambda r: r["finished_at"] is not None)
    assert record["disconnected"]
    assert record["status"] is None


def test_requests_are_recorded_with_authorization(
    upstream: ServerProcess, client: openai.OpenAI
) -> None:
    """/_fake/requests shows the Authorization header, the JSON body and a completed stream."""
    test_id = uuid.uuid4().hex
    with client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "echo:abc"}],
        stream=True,
        extra_headers=_headers(None, test_id),
    ) as stream:
        list(stream)
    record = _wait_for_record(upstream.url, test_id, lambda r: r["finished_at"] is not None)
    assert record["headers"]["authorization"] == "Bearer sk-test"
    assert (record["method"], record["path"], record["status"]) == (
        "POST",
        "/v1/chat/completions",
        200,
    )
    assert record["body"]["messages"] == [{"role": "user", "content": "echo:abc"}]
    assert record["completed"]
    assert not record["disconnected"]
    assert record["content_chunks"] == 1


def test_reset_forgets_records() -> None:
    """POST /_fake/reset empties the request log (own server: others' records stay intact)."""
    with ServerProcess(FAKE_UPSTREAM) as server, httpx.Client(base_url=server.url) as http:
        http.get("/v1/models")
        assert len(http.get("/_fake/requests").json()) == 1
        assert http.post("/_fake/reset").json() == {"cleared": 1}
        assert http.get("/_fake/requests").json() == []


def test_require_key_rejects_other_keys() -> None:
    """--require-key K answers 401 unless the request carries `Bearer K`."""
    argv = [*FAKE_UPSTREAM, "--require-key", "sk-right"]
    with ServerProcess(argv) as server:
        for key, ok in (("sk-wrong", False), ("sk-right", True)):
            with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as sdk:
                if ok:
                    assert _content(_chat_stream(sdk, "echo:ok")) == "ok"
                else:
                    with pytest.raises(openai.AuthenticationError):
                        _chat_stream(sdk, "echo:ok")


def test_server_process_reports_early_exit() -> None:
    """ServerProcess raises with the child's last output when it dies before listening."""
    argv = [sys.executable, "-c", "print('boom on startup'); raise SystemExit(3)"]
    with pytest.raises(RuntimeError, match="boom on startup"), ServerProcess(argv):
        pass
