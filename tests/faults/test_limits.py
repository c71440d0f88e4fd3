"""(l) Clients that ask for more than they may: per-key concurrency, rates and tokens (429
with Retry-After), the instance's capacity (503), conversation size (400/413), and limits
that hold across instances sharing Redis."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from sserelay.testing.redis_server import RedisServer

from .conftest import Relay, create_key, wait_for
from .endpoints import FAMILIES, Seen, prompt, run, start

LONG = prompt("tokens=1000; rate=50", "long")


def refused(response: httpx.Response) -> Seen:
    raw = response.read()
    response.close()
    error = json.loads(raw)["error"]
    return Seen(response.status_code, error["code"],
                retry_after=response.headers.get("retry-after"), raw=raw.decode())


@pytest.fixture
def key_db(tmp_path: Path) -> Path:
    return tmp_path / "keys.sqlite3"


@pytest.mark.parametrize("family", FAMILIES)
def test_a_key_past_its_concurrent_streams_gets_429_and_others_do_not(
    relay_factory: Callable[..., Relay], key_db: Path, family: str
) -> None:
    """A key with two streams running gets 429 with Retry-After for a third, another key
    does not, and once one ends the key may start again."""
    greedy, other = create_key(key_db, "greedy"), create_key(key_db, "other")
    relay = relay_factory("--key-concurrent-streams", "2", db=key_db)
    extra = {"disconnect": "cancel"} if family == "streams" else {}
    with ExitStack() as stack:
        client = stack.enter_context(relay.client(headers={"Authorization": f"Bearer {greedy}"}))
        running = [start(client, family, LONG, **extra) for _ in range(2)]
        assert [r.status_code for r in running] == [200, 200]
        third = refused(start(client, family, LONG, **extra))
        relay.keep(third.raw)
        assert (third.status, third.code) == (429, "concurrent_streams_exceeded")
        assert third.retry_after and int(third.retry_after) >= 1
        with relay.client(headers={"Authorization": f"Bearer {other}"}) as elsewhere:
            assert run(elsewhere, family, prompt("tokens=3", "hi")).ending == "done"
        running[0].close()

        def admitted() -> bool:
            response = start(client, family, prompt("tokens=3", "again"), **extra)
            response.read()
            response.close()
            return response.status_code == 200

        wait_for(admitted, "a slot to free up")
        for response in running[1:]:
            response.close()


def test_the_instance_at_capacity_answers_503_with_retry_after(
    relay_factory: Callable[..., Relay],
) -> None:
    """Past --max-streams on this instance, every family gets 503 with Retry-After."""
    relay = relay_factory("--max-streams", "2")
    with relay.client() as client:
        running = [start(client, "article-get", LONG) for _ in range(2)]
        try:
            for family in FAMILIES:
                seen = refused(start(client, family, LONG))
                relay.keep(seen.raw)
                assert (seen.status, seen.code) == (503, "server_busy")
                assert seen.retry_after
        finally:
            for response in running:
                response.close()


@pytest.mark.parametrize("family", ["article-get", "chat"])
def test_requests_per_minute_past_the_limit_get_429(
    relay_factory: Callable[..., Relay], family: str
) -> None:
    """Without keys the loopback caller is the client: its fourth request in a minute, with
    a limit of three, gets 429 naming the limit, with Retry-After."""
    relay = relay_factory("--key-requests-per-minute", "3")
    with relay.client() as client:
        for _ in range(3):
            assert run(client, family, prompt("tokens=2", "hi")).status == 200
        seen = run(client, family, prompt("tokens=2", "hi"))
    relay.keep(seen.raw)
    assert (seen.status, seen.code) == (429, "requests_per_minute_exceeded")
    assert seen.retry_after and "3 requests per minute" in seen.raw


def test_tokens_per_minute_count_the_prompt_before_and_the_answer_after(
    relay_factory: Callable[..., Relay],
) -> None:
    """A prompt larger than the whole per-minute budget is a 413; an answer's completion
    tokens are counted when it ends, so the next request is refused with 429."""
    relay = relay_factory("--key-tokens-per-minute", "100")
    with relay.client() as client:
        too_big = run(client, "chat", prompt("tokens=2", "x" * 800))
        answered = run(client, "chat", prompt("tokens=150", "hi"))
        after = run(client, "article-get", prompt("tokens=2", "hi"))
    for seen in (too_big, answered, after):
        relay.keep(seen.raw)
    assert (too_big.status, too_big.code) == (413, "prompt_exceeds_token_limit")
    assert (answered.status, answered.ending) == (200, "done")
    assert (after.status, after.code) == (429, "tokens_per_minute_exceeded")
    assert after.retry_after


@pytest.mark.parametrize("family", ["article-post", "streams", "chat"])
def test_too_many_messages_is_400_and_too_much_text_413(
    relay_factory: Callable[..., Relay], family: str
) -> None:
    """The conversation's size is checked before anything is sent upstream, in words."""
    relay = relay_factory("--max-messages", "2", "--max-prompt-chars", "50",
                          "--max-gateway-prompt-chars", "50")
    many = [{"role": "user", "content": "hi"}] * 3
    bodies = {
        "article-post": ("/completions/chat", {"messages": many}, {"prompt": "y" * 60}),
        "streams": ("/v1/streams", {"messages": many},
                    {"messages": [{"role": "user", "content": "y" * 60}]}),
        "chat": ("/v1/chat/completions", {"model": "m", "messages": many},
                 {"model": "m", "messages": [{"role": "user", "content": "y" * 60}]}),
    }
    path, too_many, too_long = bodies[family]
    with relay.client() as client:
        first = client.post(path, json=too_many)
        second = client.post(path, json=too_long)
    relay.keep(first.text + second.text)
    assert (first.status_code, first.json()["error"]["code"]) == (400, "too_many_messages")
    assert (second.status_code, second.json()["error"]["code"]) == (413, "prompt_too_large")


@pytest.fixture
def shared_redis(redis_server: RedisServer) -> Iterator[str]:
    yield redis_server.url


def test_concurrency_limits_hold_across_instances_sharing_redis(
    relay_factory: Callable[..., Relay], key_db: Path, shared_redis: str
) -> None:
    """Two instances on one Redis count a key's streams together: a stream on one uses the
    key's only slot on the other too, until it ends."""
    key = create_key(key_db, "shared")
    one = relay_factory("--redis", shared_redis, "--key-concurrent-streams", "1", db=key_db)
    two = relay_factory("--redis", shared_redis, "--key-concurrent-streams", "1", db=key_db)
    auth = {"Authorization": f"Bearer {key}"}
    with one.client(headers=auth) as first, two.client(headers=auth) as second:
        running = start(first, "chat", LONG)
        assert running.status_code == 200
        seen = refused(start(second, "chat", LONG))
        two.keep(seen.raw)
        assert (seen.status, seen.code) == (429, "concurrent_streams_exceeded")
        running.close()
        wait_for(lambda: run(second, "chat", prompt("tokens=2", "hi")).status == 200,
                 "the slot to be free on the other instance")
