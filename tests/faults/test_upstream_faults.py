"""Upstreams that fail in every way the issue lists, on every endpoint family: each ends
with the right typed ending or HTTP status, within its limits, with the upstream request
closed once nobody needs it, and no key or traceback anywhere (scanned when the module ends)."""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import Upstream

from .conftest import Relay, upstream_closed
from .endpoints import FAMILIES, prompt, run

GATEWAY = ("streams", "chat")  # /v1/streams goes through the gateway


@pytest.mark.parametrize("family", FAMILIES)
def test_upstream_dying_mid_answer_ends_truncated(strict_relay: Relay, family: str) -> None:
    """(a) An upstream whose connection drops after 3 chunks: typed ending `truncated`."""
    with strict_relay.client() as client:
        seen = run(client, family, prompt("tokens=10; die_after=3", "hi"))
    strict_relay.keep(seen.raw)
    assert (seen.status, seen.code, seen.ending) == (200, "upstream_truncated", "truncated")
    assert seen.text == "tok0 tok1 tok2 "


@pytest.mark.parametrize("family", FAMILIES)
def test_stalled_upstream_ends_at_the_idle_limit_and_is_closed(
    strict_relay: Relay, upstream: Upstream, family: str
) -> None:
    """(b) An upstream that stops sending: the idle limit ends the stream as `truncated`
    and the upstream sees its request closed."""
    marker = secrets.token_hex(6)
    with strict_relay.client() as client:
        seen = run(client, family, prompt("tokens=10; stall_after=2", marker))
    strict_relay.keep(seen.raw)
    code = "upstream_timeout" if family in GATEWAY else "idle_timeout"
    assert (seen.status, seen.code, seen.ending) == (200, code, "truncated")
    assert not upstream_closed(upstream, marker)["completed"]


@pytest.mark.parametrize("family", FAMILIES)
def test_malformed_json_ends_with_an_error_and_closes_the_upstream(
    strict_relay: Relay, upstream: Upstream, family: str
) -> None:
    """(c) A chunk that is not JSON: typed `error` ending; the rest is not read (closed)."""
    marker = secrets.token_hex(6)
    with strict_relay.client() as client:
        seen = run(client, family, prompt("tokens=300; rate=100; malformed_after=2", marker))
    strict_relay.keep(seen.raw)
    assert (seen.status, seen.code, seen.ending) == (200, "upstream_malformed", "error")
    assert not upstream_closed(upstream, marker)["completed"]


@pytest.mark.parametrize("family", FAMILIES)
def test_error_event_mid_stream_is_the_typed_error_ending(strict_relay: Relay, family: str
                                                          ) -> None:
    """(d) The upstream's own mid-stream error event: typed `error` ending after the text."""
    with strict_relay.client() as client:
        seen = run(client, family, prompt("tokens=10; error_after=2", "hi"))
    strict_relay.keep(seen.raw)
    assert (seen.status, seen.code, seen.ending) == (200, "upstream_error", "error")
    assert seen.text == "tok0 tok1 "
    assert "The server had an error" in seen.raw


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("upstream_status", "status", "code"),
    [
        (401, 502, "upstream_auth"),  # sserelay's key was refused: not the client's to fix
        (429, 429, None),
        (500, 502, "upstream_unavailable"),
        (503, 503, "upstream_unavailable"),
    ],
)
def test_upstream_error_statuses_are_real_http_statuses(
    strict_relay: Relay, family: str, upstream_status: int, status: int, code: str | None
) -> None:
    """(e) 401, 429, 500, 503 before the first byte: a real status in words, Retry-After
    kept on 429 (the gateway retries first, within its bounded budget)."""
    with strict_relay.client() as client:
        seen = run(client, family, prompt(f"status={upstream_status}", "hi"))
    strict_relay.keep(seen.raw)
    assert seen.status == status
    if code is not None:
        assert seen.code == code
    else:
        assert seen.code in ("rate_limited", "rate_limit_exceeded")
        assert seen.retry_after == "1"
    assert "Scripted error" in seen.raw or upstream_status != 429


@pytest.mark.parametrize("family", FAMILIES)
def test_crlf_framing_and_split_characters_arrive_exactly(strict_relay: Relay, family: str
                                                          ) -> None:
    """(f) CRLF line ends, events and multi-byte characters cut across writes: the text
    arrives exactly and the stream ends `done`."""
    text = "héllo wörld 👋🏽 ünïcode\n  indented line"
    with strict_relay.client() as client:
        seen = run(client, family, prompt("crlf=true; split=true", "echo:" + text))
    strict_relay.keep(seen.raw)
    assert (seen.status, seen.ending, seen.text) == (200, "done", text)


@pytest.mark.parametrize("family", FAMILIES)
def test_upstream_that_never_answers_is_given_up_on_and_closed(
    strict_relay: Relay, upstream: Upstream, family: str
) -> None:
    """(g) An upstream that never sends its headers: the article endpoints (already
    streaming heartbeats) end with a typed error, the gateway answers 504; either way the
    upstream request is closed."""
    marker = secrets.token_hex(6)
    with strict_relay.client() as client:
        seen = run(client, family, prompt("first_delay=60", marker))
    strict_relay.keep(seen.raw)
    if family in GATEWAY:
        assert (seen.status, seen.code) == (504, "upstream_timeout")
    else:
        assert (seen.status, seen.code, seen.ending) == (200, "upstream_timeout", "error")
    upstream_closed(upstream, marker)
