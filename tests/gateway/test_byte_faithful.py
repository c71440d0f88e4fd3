"""A relayed chat stream is the upstream's stream byte for byte, apart from the changes
docs/gateway.md lists: the usage chunk dropped when the client did not ask for it, and
framing normalised to `data: <json>\\n\\n` (LF line endings, no comments)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from sserelay.testing.procs import ServerProcess
from tests.conftest import PROVIDER_KEY, Upstream
from tests.gateway.conftest import Keys

TEXT = "line one\n\n  spaced\ndata: x\r\nemoji 👩‍👩‍👧 é \"quoted\" \\ [DONE]"
_ID = re.compile(rb'"id":"(chat)?cmpl-fake\d+"')
_CREATED = re.compile(rb'"created":\d+')
_EVENT_ID = re.compile(rb"^id: [A-Za-z0-9_-]+:\d+\n", re.MULTILINE)


def normalise(raw: bytes) -> bytes:
    """Blank out what differs between two requests for the same answer: id and time, and
    the `id: <stream>:<seq>` line sserelay adds to each event (documented)."""
    return _CREATED.sub(b'"created":0', _ID.sub(b'"id":"ID"', _EVENT_ID.sub(b"", raw)))


def fetch(url: str, key: str, body: dict[str, Any]) -> bytes:
    with httpx.Client(timeout=30) as client:
        reply = client.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 200, reply.text
    return reply.content


def chat_body(prompt: str, *, usage: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "stream": True,
                            "messages": [{"role": "user", "content": prompt}]}
    if usage:
        body["stream_options"] = {"include_usage": True}
    return body


@pytest.mark.parametrize("scenario", ["", "[[scenario: split=1]] ", "[[scenario: keepalive=1]] "])
def test_chat_stream_with_usage_is_byte_identical(
    gateway: ServerProcess, upstream: Upstream, keys: Keys, scenario: str
) -> None:
    """With include_usage the client gets the upstream's bytes exactly, bar keep-alive comments."""
    body = chat_body(scenario + "echo:" + TEXT, usage=True)
    direct = fetch(upstream.url + "/v1/chat/completions", PROVIDER_KEY, body)
    relayed = fetch(gateway.url + "/v1/chat/completions", keys.full, body)
    expected = direct.replace(b": keep-alive\n\n", b"")
    assert normalise(relayed) == normalise(expected)
    assert b'"service_tier":"default"' in relayed  # fields sserelay does not know pass through


def test_chat_stream_without_usage_drops_only_the_usage_chunk(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """Without include_usage the client gets the upstream's bytes minus the usage chunk."""
    direct = fetch(upstream.url + "/v1/chat/completions", PROVIDER_KEY,
                   chat_body("echo:" + TEXT, usage=True))
    relayed = fetch(gateway.url + "/v1/chat/completions", keys.full,
                    chat_body("echo:" + TEXT, usage=False))
    events = direct.split(b"\n\n")
    usage_chunks = [e for e in events if b'"choices":[]' in e]
    assert len(usage_chunks) == 1
    expected = b"\n\n".join(e for e in events if e not in usage_chunks)
    assert normalise(relayed) == normalise(expected)


def test_crlf_framing_is_normalised_to_lf(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """An upstream that frames events with CRLF is relayed with LF; the data is unchanged."""
    body = chat_body("[[scenario: crlf=1; split=1]] echo:" + TEXT, usage=True)
    direct = fetch(upstream.url + "/v1/chat/completions", PROVIDER_KEY, body)
    relayed = fetch(gateway.url + "/v1/chat/completions", keys.full, body)
    assert b"\r\n" in direct
    assert normalise(relayed) == normalise(direct.replace(b"\r\n", b"\n"))


def test_legacy_completion_stream_is_byte_identical(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """Legacy completions are relayed byte for byte as well."""
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "echo:" + TEXT, "stream": True,
            "stream_options": {"include_usage": True}}
    direct = fetch(upstream.url + "/v1/completions", PROVIDER_KEY, body)
    relayed = fetch(gateway.url + "/v1/completions", keys.full, body)
    assert normalise(relayed) == normalise(direct)
