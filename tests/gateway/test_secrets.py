"""The provider key reaches the upstream and nothing else: no response body, header or log
line of the gateway contains it, whatever happens."""

from __future__ import annotations

import httpx

from sserelay.testing.procs import ServerProcess
from tests.conftest import PROVIDER_KEY, Upstream, start_relay
from tests.gateway.conftest import Keys, marker, records_with, write_config

REQUESTS = [
    ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True,
                                      "messages": [{"role": "user", "content": "echo:hi"}]}),
    ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini",
                                      "messages": [{"role": "user", "content": "echo:hi"}]}),
    ("POST", "/v1/completions", {"model": "x", "prompt": "[[scenario: status=401]] hi"}),
    ("POST", "/v1/completions", {"model": "x", "prompt": "[[scenario: status=429]] hi"}),
    ("POST", "/v1/completions", {"model": "x", "prompt": "[[scenario: status=500]] hi"}),
    ("POST", "/v1/completions", {"model": "x", "prompt": "[[scenario: error_after=1]] a b",
                                 "stream": True}),
    ("POST", "/v1/chat/completions", {"model": "flaky-first",
                                      "messages": [{"role": "user", "content": "hi"}]}),
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", {"model": ""}),
]


def everything_seen(relay: ServerProcess, key: str) -> list[str]:
    seen = []
    with httpx.Client(base_url=relay.url, timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as client:
        for method, path, body in REQUESTS:
            reply = client.request(method, path, json=body)
            seen += [reply.text, str(reply.headers)]
    return seen


def test_provider_key_is_in_no_response_header_or_log(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """The provider key goes upstream only: in no response, header or log line, whatever happens."""
    word = marker()
    seen = everything_seen(gateway, keys.full)
    with httpx.Client(timeout=30) as client:
        client.post(gateway.url + "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {keys.full}"},
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": word}]})
    assert records_with(upstream, word)[0]["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    log = gateway.output()
    assert "falling back" in log  # the log was written to, so scanning it means something
    for text in [*seen, log]:
        assert PROVIDER_KEY not in text
    assert keys.full not in log and keys.limited not in log


def test_rejected_provider_key_is_not_echoed(upstream: Upstream, tmp_path: object) -> None:
    """An upstream rejecting sserelay's key is a 502 naming the cause, never echoing the key."""
    from pathlib import Path

    home = Path(str(tmp_path))
    config = write_config(home / "gateway.toml", upstream.url)
    wrong = "sk-wrong-provider-key-000000000000"
    with start_relay(upstream.url, "--config", str(config),
                     env={"OPENAI_API_KEY": wrong, "SSERELAY_DB": str(home / "db.sqlite3")}
                     ) as relay:
        seen = everything_seen(relay, "srk-none")
        reply = httpx.post(relay.url + "/v1/chat/completions", timeout=30, json={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        log = relay.output()
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "upstream_auth"
    for text in [*seen, reply.text, log]:
        assert wrong not in text
