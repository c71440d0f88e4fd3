"""The blocking upstream client the WSGI integrations stream with, against the real fake
upstream: the same limits and typed failures as the aiohttp client."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest

from sserelay.relay.openai_text import iter_text_deltas
from sserelay.upstream.errors import UpstreamError
from sserelay.upstream.openai_client import Timeouts
from sserelay.upstream.sync_client import SyncOpenAIUpstream
from tests.conftest import PROVIDER_KEY, Upstream

SHORT = Timeouts(connect=5, first_token=0.5, idle=0.5, total=2)


def answer(upstream: Upstream, prompt: str, *, key: str = PROVIDER_KEY) -> str:
    client = SyncOpenAIUpstream(upstream.url + "/v1", key, timeouts=SHORT)
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": prompt}], "stream": True}
    with client.stream("/chat/completions", body) as stream:
        return "".join(iter_text_deltas(stream.events(), "chat", client.redact))


def failure(upstream: Upstream, prompt: str, **kwargs: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        answer(upstream, prompt, **kwargs)
    return caught.value


def test_reads_the_answer_exactly(upstream: Upstream) -> None:
    """Events split mid-line and mid-character, with CRLF line ends, decode to the exact text."""
    text = "a\nb  c 👩‍👩‍👧 <b>d</b>"
    assert answer(upstream, "[[scenario: split=1; crlf=1]] echo:" + text) == text


@pytest.mark.parametrize(
    ("scenario", "code", "status", "ending"),
    [
        ("first_delay=5", "upstream_timeout", 504, "error"),
        ("stall_after=2", "idle_timeout", 502, "truncated"),
        ("tokens=100000; rate=20", "duration_limit", 502, "truncated"),
        ("die_after=2", "upstream_truncated", 502, "truncated"),
        ("status=503", "upstream_unavailable", 503, "error"),
        ("content_type=text/plain", "upstream_bad_content_type", 502, "error"),
        ("malformed_after=1", "upstream_malformed", 502, "error"),
    ],
)
def test_each_failure_is_typed_as_by_the_async_client(
    upstream: Upstream, scenario: str, code: str, status: int, ending: str
) -> None:
    """Slow, stalled, endless, broken and wrong answers end in the same typed errors (code,
    status, ending) as with sserelay's aiohttp client, each limit bounding the wait."""
    error = failure(upstream, f"[[scenario: {scenario}]] echo:a b c d e f")
    assert (error.code, error.status, error.ending) == (code, status, ending)


def test_a_stalled_upstream_is_closed_after_the_idle_limit(upstream: Upstream) -> None:
    """When the idle limit fires, the upstream sees its connection closed."""
    marker = secrets.token_hex(6)
    failure(upstream, f"[[scenario: stall_after=2]] echo:{marker} a b c d e f")
    for _ in range(100):
        [record] = [r for r in upstream.requests() if marker in json.dumps(r["body"])]
        if record["disconnected"]:
            break
        time.sleep(0.1)
    assert record["disconnected"] and not record["completed"]


def test_a_rejected_key_is_a_502_that_does_not_echo_it(upstream: Upstream) -> None:
    """An upstream 401 becomes 502 upstream_auth, and the key is in no part of the error."""
    wrong = "sk-wrong-key-000000000000"
    error = failure(upstream, "hi", key=wrong)
    assert (error.code, error.status) == ("upstream_auth", 502)
    assert wrong not in repr(error) and wrong not in error.message


def test_an_unreachable_upstream_is_a_502(upstream: Upstream) -> None:
    """Nothing listening at the base URL is 502 upstream_unreachable, not a traceback."""
    client = SyncOpenAIUpstream("http://127.0.0.1:9/v1", PROVIDER_KEY, timeouts=SHORT)
    with pytest.raises(UpstreamError) as caught, client.stream("/chat/completions", {}):
        pass
    assert (caught.value.code, caught.value.status) == ("upstream_unreachable", 502)
