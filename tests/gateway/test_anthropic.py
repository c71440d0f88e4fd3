"""Anthropic both ways: the anthropic SDK on /v1/messages (from an OpenAI-compatible upstream
and from an Anthropic-format one), and the openai SDK streaming from a Claude-style model."""

from __future__ import annotations

import asyncio

import anthropic
import openai
import pytest

from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream
from tests.gateway.conftest import Keys, marker, records_with

TRICKY = "line one\n\n  two spaces\ndata: forged\n\nemoji 👩‍👩‍👧 <b>x</b> é \"q\" \\"
MODELS = ["gpt-4o-mini", "claude-fake"]  # translated from chat; Anthropic's own format


def claude(gateway: ServerProcess, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_streams_exact_text_and_usage(
    gateway: ServerProcess, keys: Keys, model: str
) -> None:
    """The anthropic stream helper gets exact text, stop reason and usage from either upstream."""
    with claude(gateway, keys.full) as client, client.messages.stream(
        model=model, max_tokens=1000, messages=[{"role": "user", "content": "echo:" + TRICKY}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TRICKY
    assert final.content[0].text == TRICKY  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_async_anthropic_sdk_streams_raw_events(
    gateway: ServerProcess, keys: Keys, model: str
) -> None:
    """The async client sees Anthropic's event sequence, in order."""

    async def run() -> list[str]:
        async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key=keys.full) as client:
            stream = await client.messages.create(
                model=model, max_tokens=1000, stream=True,
                messages=[{"role": "user", "content": "[[scenario: tokens=3]] go"}],
            )
            return [event.type async for event in stream]

    kinds = [k for k in asyncio.run(run()) if k != "ping"]
    assert kinds == ["message_start", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_non_stream(gateway: ServerProcess, keys: Keys, model: str) -> None:
    """A non-streamed message comes back whole, with usage."""
    with claude(gateway, keys.full) as client:
        message = client.messages.create(
            model=model, max_tokens=2,
            messages=[{"role": "user", "content": "[[scenario: tokens=9]] x"}],
        )
    assert message.content[0].text == "tok0 tok1 "  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


def test_anthropic_request_reaches_an_openai_upstream_as_chat(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """An Anthropic request for an OpenAI-compatible model arrives upstream as the same chat."""
    word = marker()
    with claude(gateway, keys.full) as client:
        client.messages.create(
            model="gpt-4o-mini", max_tokens=50, system="Be brief.", stop_sequences=["END"],
            messages=[{"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "hello"},
                      {"role": "user", "content": [{"type": "text", "text": f"echo:{word}"}]}],
        )
    body = records_with(upstream, word)[0]["body"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": f"echo:{word}"}]
    assert (body["max_tokens"], body["stop"]) == (50, ["END"])


def test_anthropic_upstream_gets_anthropic_auth(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """An Anthropic upstream gets the provider key in x-api-key, with anthropic-version."""
    word = marker()
    with claude(gateway, keys.full) as client:
        client.messages.create(model="sonnet", max_tokens=5,
                               messages=[{"role": "user", "content": f"echo:{word}"}])
    record = records_with(upstream, word)[0]
    assert record["path"] == "/v1/messages" and "authorization" not in record["headers"]
    assert record["headers"]["anthropic-version"] == "2023-06-01"
    assert record["body"]["model"] == "claude-fake" and record["body"]["max_tokens"] == 5


def test_openai_sdk_streams_from_an_anthropic_upstream(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """The openai SDK streams exact text, finish reason and usage from an Anthropic upstream."""
    word = marker()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys.full) as client:
        chunks = list(client.chat.completions.create(
            model="claude-fake", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": f"echo:{word} " + TRICKY}],
        ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"{word} " + TRICKY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0 and not chunks[-1].choices
    body = records_with(upstream, word)[0]["body"]
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert body["max_tokens"] > 0


def test_openai_sdk_non_stream_from_an_anthropic_upstream(
    gateway: ServerProcess, keys: Keys
) -> None:
    """A non-streamed chat completion from an Anthropic-format model."""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys.full) as client:
        answer = client.chat.completions.create(
            model="claude-fake", max_tokens=3,
            messages=[{"role": "user", "content": "[[scenario: tokens=9]] x"}])
    assert answer.choices[0].message.content == "tok0 tok1 tok2 "
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 3


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_errors_come_out_as_anthropic_sdk_classes(
    gateway: ServerProcess, keys: Keys, model: str
) -> None:
    """Bad key, forbidden model, upstream 429, mid-stream failure: the anthropic SDK's classes."""
    with claude(gateway, "srk-wrong") as client, pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=model, max_tokens=5,
                               messages=[{"role": "user", "content": "x"}])
    with claude(gateway, keys.limited) as client, pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="claude-fake", max_tokens=5,
                               messages=[{"role": "user", "content": "x"}])
    with claude(gateway, keys.full) as client:
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model=model, max_tokens=5, messages=[
                {"role": "user", "content": "[[scenario: status=429]] x"}])
        with pytest.raises(anthropic.APIError), client.messages.stream(
            model=model, max_tokens=50,
            messages=[{"role": "user", "content": "[[scenario: error_after=2]] a b c d e f"}],
        ) as stream:
            for _ in stream.text_stream:
                pass


def test_anthropic_max_tokens_is_clamped(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """A key's max_tokens cap holds for Anthropic clients too, at the upstream."""
    word = marker()
    with claude(gateway, keys.limited) as client:
        client.messages.create(model="fast", max_tokens=4000,
                               messages=[{"role": "user", "content": f"echo:{word}"}])
    assert records_with(upstream, word)[0]["body"]["max_tokens"] == 5


def test_anthropic_passthrough_is_byte_identical(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """Anthropic upstream to Anthropic client: the upstream's bytes, even from split writes."""
    import re

    import httpx

    from tests.conftest import PROVIDER_KEY

    body = {"model": "claude-fake", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "[[scenario: split=1]] echo:" + TRICKY}]}
    ids = re.compile(rb"msg_fake\d+")

    def fetch(url: str, key: str) -> bytes:
        reply = httpx.post(url + "/v1/messages", json=body, timeout=30,
                           headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
        assert reply.status_code == 200, reply.text
        return ids.sub(b"X", reply.content)

    relayed = fetch(gateway.url, keys.full)
    assert relayed == fetch(upstream.url, PROVIDER_KEY)
    assert b"event: ping" in relayed


def test_legacy_completions_are_refused_for_an_anthropic_model(
    gateway: ServerProcess, keys: Keys
) -> None:
    """Legacy completions have no Anthropic equivalent: a BadRequestError naming the model."""
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=keys.full, max_retries=0)
    with client, pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="claude-fake", prompt="x")
    assert caught.value.param == "model"  # type: ignore[attr-defined]
