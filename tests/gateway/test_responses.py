"""The Responses API through the official openai SDK: passed through to an upstream that
implements it, and translated from chat completions for upstreams that do not (the fake's
chat mode, as llama.cpp; and an Anthropic-format one)."""

from __future__ import annotations

import asyncio

import openai
import pytest

from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream
from tests.gateway.conftest import Keys, marker, records_with

TRICKY = "line one\n\n  two spaces\ndata: forged\n\nemoji 👩‍👩‍👧 <b>x</b> é \"q\" \\"
MODELS = ["gpt-resp", "gpt-4o-mini", "claude-fake"]  # native, from chat, from Anthropic


def sdk(gateway: ServerProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_responses_stream_helper_gets_exact_text_and_usage(
    gateway: ServerProcess, keys: Keys, model: str
) -> None:
    """`responses.stream()` accumulates the exact text, and the final response has usage."""
    with sdk(gateway, keys.full) as client, client.responses.stream(
        model=model, input="echo:" + TRICKY
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == TRICKY
    assert final.output_text == TRICKY and final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_async_responses_stream_event_sequence(
    gateway: ServerProcess, keys: Keys, model: str
) -> None:
    """The async client sees OpenAI's event sequence with increasing sequence numbers."""

    async def run() -> list[tuple[str, int]]:
        async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=keys.full) as client:
            stream = await client.responses.create(
                model=model, input="[[scenario: tokens=2]] go", stream=True)
            return [(e.type, e.sequence_number) async for e in stream]

    events = asyncio.run(run())
    assert [t for t, _ in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert [n for _, n in events] == list(range(len(events)))


def test_native_responses_stream_is_byte_identical(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """A Responses upstream's stream reaches the client byte for byte, even from split writes."""
    import re

    import httpx

    from tests.conftest import PROVIDER_KEY

    body = {"model": "gpt-resp", "stream": True, "input": "[[scenario: split=1]] echo:" + TRICKY}
    ids = re.compile(rb'(resp|msg)_fake\d+|"created_at":\d+')

    def fetch(url: str, key: str) -> bytes:
        reply = httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"},
                           timeout=30)
        assert reply.status_code == 200, reply.text
        return ids.sub(b"X", reply.content)

    direct = fetch(upstream.url + "/v1/responses", PROVIDER_KEY)
    relayed = fetch(gateway.url + "/v1/responses", keys.full)
    assert relayed == direct
    assert records_with(upstream, TRICKY[:8])[-1]["path"] == "/v1/responses"


@pytest.mark.parametrize("model", MODELS)
def test_responses_non_stream(gateway: ServerProcess, keys: Keys, model: str) -> None:
    """A non-streamed response has the text; an answer cut by the cap is "incomplete"."""
    with sdk(gateway, keys.full) as client:
        whole = client.responses.create(model=model, input="echo:" + TRICKY)
        cut = client.responses.create(model=model, input="[[scenario: tokens=9]] x",
                                      max_output_tokens=2)
    assert whole.output_text == TRICKY and whole.status == "completed"
    assert cut.output_text == "tok0 tok1 " and cut.status == "incomplete"
    assert cut.usage is not None and cut.usage.output_tokens == 2


def test_responses_request_reaches_the_upstream_as_chat(
    gateway: ServerProcess, upstream: Upstream, keys: Keys
) -> None:
    """instructions, input items and max_output_tokens arrive as a chat request."""
    word = marker()
    with sdk(gateway, keys.full) as client:
        client.responses.create(
            model="gpt-4o-mini", instructions="Be brief.", max_output_tokens=20,
            input=[{"role": "user", "content": "hi"},
                   {"role": "assistant", "content": "hello"},
                   {"role": "user", "content": [{"type": "input_text", "text": f"echo:{word}"}]}],
        )
    body = records_with(upstream, word)[0]["body"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": f"echo:{word}"}]
    assert body["max_tokens"] == 20


def test_responses_mid_stream_failure_is_an_error_event(
    gateway: ServerProcess, keys: Keys
) -> None:
    """A failure after the first byte ends the stream with an `error` event."""
    with sdk(gateway, keys.full) as client:
        events = list(client.responses.create(
            model="gpt-4o-mini", stream=True,
            input="[[scenario: error_after=2]] echo:a b c d e f"))
    assert events[-1].type == "error"
    assert "model provider" in events[-1].message  # type: ignore[union-attr]


def test_responses_refuse_what_needs_openai(gateway: ServerProcess, keys: Keys) -> None:
    """previous_response_id needs OpenAI's stored state: BadRequestError naming it."""
    with sdk(gateway, keys.full) as client, pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o-mini", input="x", previous_response_id="resp_1")
    assert caught.value.param == "previous_response_id"  # type: ignore[attr-defined]


def test_responses_key_policy(gateway: ServerProcess, upstream: Upstream, keys: Keys) -> None:
    """The key's cap applies to max_output_tokens; its system prompt precedes the client's."""
    word = marker()
    with sdk(gateway, keys.guided) as client:
        client.responses.create(model="gpt-4o-mini", instructions="Mine.", input=f"echo:{word}")
    messages = records_with(upstream, word)[0]["body"]["messages"]
    assert messages[0] == {"role": "system", "content": "Answer in French."}
    assert messages[1] == {"role": "developer", "content": "Mine."}
    word = marker()
    with sdk(gateway, keys.limited) as client:
        client.responses.create(model="fast", input=f"echo:{word}", max_output_tokens=999)
    assert records_with(upstream, word)[0]["body"]["max_tokens"] == 5
