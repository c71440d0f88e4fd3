"""sserelay started from sserelay.example.toml, its upstream pointed at the fake one by an
environment variable: each setting of the file is seen taking effect."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from httpx_sse import connect_sse

from sserelay.testing.procs import ServerProcess, free_port
from tests.conftest import PROVIDER_KEY, Upstream
from tests.gateway.conftest import create_key, wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "sserelay.example.toml"


@dataclass
class Deployment:
    server: ServerProcess
    home: Path
    intern: str
    ops: str

    @property
    def auth(self) -> dict[str, str]:
        """The relay endpoints, like /v1, want a key once keys exist."""
        return {"Authorization": f"Bearer {self.ops}"}

    @property
    def db(self) -> Path:
        return self.home / "keys.sqlite3"

    @property
    def log(self) -> Path:
        return self.home / "sserelay.jsonl"


def example_env(upstream: Upstream, home: Path, port: int) -> dict[str, str]:
    """What an operator would override to run the example here: the upstream's address,
    the port, where the database and the log go."""
    return {
        "OPENAI_API_KEY": PROVIDER_KEY,
        "SSERELAY_UPSTREAMS_OPENAI_BASE_URL": upstream.url + "/v1",
        "SSERELAY_SERVER_PORT": str(port),
        "SSERELAY_GATEWAY_DATABASE": str(home / "keys.sqlite3"),
        "SSERELAY_LOGGING_FILE": str(home / "sserelay.jsonl"),
    }


@pytest.fixture(scope="module")
def example(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("example")
    intern = create_key(home / "keys.sqlite3", "intern")  # its policy comes from the file
    ops = create_key(home / "keys.sqlite3", "ops")
    port = free_port()
    argv = [sys.executable, "-m", "sserelay.cli", "serve", "--config", str(EXAMPLE),
            "--idle-timeout", "1"]
    with ServerProcess(argv, port=port, env=example_env(upstream, home, port)) as server:
        yield Deployment(server, home, intern, ops)


def marker() -> str:
    return uuid.uuid4().hex[:12]


def record_with(upstream: Upstream, word: str) -> dict[str, Any]:
    records: list[dict[str, Any]] = wait_for(
        lambda: [r for r in upstream.requests() if word in json.dumps(r["body"])],
        f"the upstream request {word}")
    return records[0]


def test_server_port_and_host_come_from_the_environment_and_file(example: Deployment) -> None:
    """SSERELAY_SERVER_PORT overrides the file's port; [server] host is where it listens."""
    assert example.server.url == f"http://127.0.0.1:{example.server.port}"
    assert httpx.get(example.server.url + "/simple", timeout=10).status_code == 200


def test_cors_allows_only_the_files_origins(example: Deployment) -> None:
    """[cors] origins: the listed origin gets CORS headers, another origin none."""
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(example.server.url + "/completions/chat", timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
    allowed = preflight("https://app.example.com")
    assert allowed.headers.get("access-control-allow-origin") == "https://app.example.com"
    assert "access-control-allow-origin" not in preflight("https://evil.example").headers


def test_relay_endpoints_use_the_files_upstream_and_models(
    example: Deployment, upstream: Upstream
) -> None:
    """[relay] upstream / chat_model / completion_model: the article endpoints ask the fake
    upstream for the file's models, with the key named by api_key_env."""
    word = marker()
    for path in ("/completionChat", "/completion"):
        reply = httpx.get(example.server.url + path, params={"prompt": f"{path} {word}"},
                          headers=example.auth, timeout=30)
        assert reply.status_code == 200 and "[DONE]" in reply.text
    chat = record_with(upstream, f"/completionChat {word}")
    legacy = record_with(upstream, f"/completion {word}")
    assert (chat["body"]["model"], legacy["body"]["model"]) == (
        "gpt-4o-mini", "gpt-3.5-turbo-instruct")
    assert chat["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"


def test_flag_overrides_the_files_idle_timeout(example: Deployment) -> None:
    """--idle-timeout 1 beats the file's 60 s: a stalled upstream ends as idle_timeout."""
    with httpx.Client(base_url=example.server.url, headers=example.auth, timeout=30
                      ) as client, connect_sse(
        client, "GET", "/completionChat",
        params={"prompt": f"[[scenario: tokens=20; stall_after=2]] {marker()}"},
    ) as source:
        events = list(source.iter_sse())
    error = json.loads(events[-2].data)["error"]
    assert (error["code"], error["ending"]) == ("idle_timeout", "truncated")


def test_limits_refuse_a_prompt_over_max_prompt_chars(example: Deployment) -> None:
    """[limits] max_prompt_chars = 32000: one character more is a 413."""
    reply = httpx.post(example.server.url + "/completions/chat", timeout=30,
                       headers=example.auth, json={"prompt": "x" * 32_001})
    assert reply.status_code == 413 and "32000" in reply.text


def test_stream_log_in_memory_replays_a_finished_stream(example: Deployment) -> None:
    """[stream_log] backend = "memory": a finished /v1/streams stream is replayed whole."""
    started = httpx.post(example.server.url + "/v1/streams", timeout=30, headers=example.auth,
                         json={
        "messages": [{"role": "user", "content": f"[[scenario: tokens=3]] {marker()}"}]})
    assert started.status_code == 201
    url = example.server.url + started.json()["url"]
    first = httpx.get(url, headers=example.auth, timeout=30).text
    again = httpx.get(url, headers=example.auth, timeout=30).text
    assert first == again and "[DONE]" in again


def test_gateway_routes_aliases_headers_and_database(
    example: Deployment, upstream: Upstream
) -> None:
    """[aliases] fast, the upstream's listed models and headers, and the database named by
    SSERELAY_GATEWAY_DATABASE (where `keys create` put the key)."""
    word = marker()
    with openai.OpenAI(base_url=example.server.url + "/v1", api_key=example.ops) as client:
        answer = client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": f"[[scenario: tokens=2]] {word}"}])
        assert answer.choices[0].message.content
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="unlisted-model", messages=[{"role": "user", "content": "x"}])
    record = record_with(upstream, word)
    assert record["body"]["model"] == "gpt-4o-mini"
    assert record["headers"]["x-team"] == "docs"


def test_key_policy_from_the_file(example: Deployment, upstream: Upstream) -> None:
    """[keys.intern]: the key named intern is capped at 64 tokens, gets the system prompt,
    and may not use a model outside its list."""
    word = marker()
    with openai.OpenAI(base_url=example.server.url + "/v1", api_key=example.intern) as client:
        client.chat.completions.create(
            model="fast", max_tokens=500,
            messages=[{"role": "user", "content": f"[[scenario: tokens=2]] {word}"}])
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    body = record_with(upstream, word)["body"]
    assert body["max_tokens"] == 64
    assert body["messages"][0] == {"role": "system", "content": "Answer briefly."}


def test_retry_attempts_from_the_file(example: Deployment, upstream: Upstream) -> None:
    """[retry] attempts = 3: an upstream answering 503 is asked three times."""
    word = marker()
    with openai.OpenAI(base_url=example.server.url + "/v1", api_key=example.ops,
                       max_retries=0) as client, pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"[[scenario: status=503]] {word}"}])
    tries = [r for r in upstream.requests() if word in json.dumps(r["body"])]
    assert len(tries) == 3


def test_abandoned_streams_are_drained(example: Deployment, upstream: Upstream) -> None:
    """[gateway] abandoned_streams = "drain": a stream the client left is read to its end."""
    word = marker()
    with openai.OpenAI(base_url=example.server.url + "/v1", api_key=example.ops) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": f"[[scenario: tokens=30; rate=40]] {word}"}])
        for _ in zip(range(3), stream, strict=False):
            pass
        stream.close()
    record = wait_for(lambda: (r := record_with(upstream, word))["finished_at"] and r,
                      "the drained upstream request")
    assert record["completed"] and not record["disconnected"]
