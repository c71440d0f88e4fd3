"""Retries and fallback before the first byte, seen from the upstream's records."""

from __future__ import annotations

import openai

from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream
from tests.gateway.conftest import Keys, marker, records_with


def test_failing_upstream_is_retried_then_the_next_one_answers(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """A failing upstream is retried as configured, then the next one serves the stream."""
    word = marker()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys.full, max_retries=0) as client:
        stream = client.chat.completions.create(
            model="flaky-first", stream=True, messages=[{"role": "user", "content": f"echo:{word}"}]
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == word
    scripted = [r.get("headers", {}).get("x-fake-scenario") for r in records_with(upstream, word)]
    assert scripted == ["status=503", "status=503", None]


def test_client_mistakes_are_not_retried(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """An upstream 400 is answered at once: retrying or falling back cannot fix the request."""
    word = marker()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys.full, max_retries=0) as client:
        try:
            client.chat.completions.create(
                model="flaky-first",
                messages=[{"role": "user", "content": f"[[scenario: status=400]] {word}"}],
            )
        except openai.APIStatusError as exc:
            status = exc.status_code
    # The first upstream's 503 comes from its header and wins over the prompt's 400; the
    # second upstream's 400 ends it: two tries there, then one at the backup.
    assert status == 400
    assert len(records_with(upstream, word)) == 3
