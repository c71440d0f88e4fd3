"""The official openai SDK, given only base_url and an sserelay key, against a real sserelay
process relaying from a real upstream process."""

from __future__ import annotations

import asyncio

import openai
import pytest

from sserelay.testing.procs import ServerProcess
from tests.conftest import Upstream
from tests.gateway.conftest import Keys, marker, records_with

TRICKY = "line one\nline two\n\n  two spaces\n\ndata: forged\n\nemoji 👩‍👩‍👧 <b>x</b> é [DONE]"


def sdk(gateway: ServerProcess, key: str, **options: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, **options)  # type: ignore[arg-type]


def async_sdk(gateway: ServerProcess, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key)


SCENARIOS = ["", "[[scenario: split=1]] ", "[[scenario: crlf=1; split=1]] "]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sync_chat_stream_text_is_exact(gateway: ServerProcess, keys: Keys, scenario: str) -> None:
    """A streamed chat completion has the exact text, however the upstream frames its writes."""
    with sdk(gateway, keys.full) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": scenario + "echo:" + TRICKY}],
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == TRICKY


def test_async_chat_stream_text_is_exact(gateway: ServerProcess, keys: Keys) -> None:
    """The async client streams the same exact text."""

    async def run() -> str:
        async with async_sdk(gateway, keys.full) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", stream=True,
                messages=[{"role": "user", "content": "echo:" + TRICKY}],
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert asyncio.run(run()) == TRICKY


def test_sync_legacy_completion_stream_text_is_exact(gateway: ServerProcess, keys: Keys) -> None:
    """Legacy completions stream `choices[0].text` exactly."""
    with sdk(gateway, keys.full) as client:
        stream = client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="echo:" + TRICKY, stream=True
        )
        assert "".join(c.choices[0].text for c in stream if c.choices) == TRICKY


def test_async_legacy_completion_stream_text_is_exact(gateway: ServerProcess, keys: Keys) -> None:
    """The async client streams legacy completions exactly too."""

    async def run() -> str:
        async with async_sdk(gateway, keys.full) as client:
            stream = await client.completions.create(
                model="gpt-3.5-turbo-instruct", prompt="echo:" + TRICKY, stream=True
            )
            return "".join([c.choices[0].text async for c in stream if c.choices])

    assert asyncio.run(run()) == TRICKY


def test_non_stream_calls_return_the_whole_answer(gateway: ServerProcess, keys: Keys) -> None:
    """Non-streamed chat and legacy completions come back whole, with usage."""
    with sdk(gateway, keys.full) as client:
        chat = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "echo:" + TRICKY}]
        )
        legacy = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="echo:abc")
    assert chat.choices[0].message.content == TRICKY
    assert chat.usage is not None and chat.usage.completion_tokens > 0
    assert legacy.choices[0].text == "abc"


def test_usage_chunk_only_when_the_client_asks(
    gateway: ServerProcess, keys: Keys, upstream: Upstream
) -> None:
    """Usage is always asked upstream; the client gets the usage chunk only if it asked."""
    word = marker()
    with sdk(gateway, keys.full) as client:
        asked = list(client.chat.completions.create(
            model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": f"echo:{word} a"}],
        ))
        silent = list(client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": f"echo:{word} b"}],
        ))
    usage = next(c for c in asked if not c.choices).usage
    assert usage is not None and usage.completion_tokens > 0
    assert all(c.choices for c in silent)
    for record in records_with(upstream, word):
        assert record["body"]["stream_options"] == {"include_usage": True}


def test_wrong_or_revoked_key_raises_authentication_error(
    gateway: ServerProcess, keys: Keys
) -> None:
    """Unknown and revoked keys get 401 (AuthenticationError), without the key echoed."""
    for key in ("srk-not-a-real-key-000000000000000000000", keys.revoked):
        with sdk(gateway, key) as client, pytest.raises(openai.AuthenticationError) as caught:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert key not in str(caught.value.body)


def test_provider_key_does_not_work_as_a_client_key(gateway: ServerProcess) -> None:
    """Presenting the provider's own key gets 401: only sserelay keys open the gateway."""
    from tests.conftest import PROVIDER_KEY

    with sdk(gateway, PROVIDER_KEY) as client, pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_upstream_429_after_retries_raises_rate_limit_error(
    gateway: ServerProcess, keys: Keys, upstream: Upstream
) -> None:
    """An upstream 429 is retried, then raised as RateLimitError with Retry-After."""
    word = marker()
    client = sdk(gateway, keys.full, max_retries=0)
    with client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": f"[[scenario: status=429]] {word}"}],
        )
    assert caught.value.response.headers["retry-after"] == "1"
    assert len(records_with(upstream, word)) == 2  # retry.attempts in the test config


def test_upstream_400_raises_bad_request_error(gateway: ServerProcess, keys: Keys) -> None:
    """An upstream 400 is passed on as 400 with its message: the SDK's BadRequestError."""
    client = sdk(gateway, keys.full, max_retries=0)
    with client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": "[[scenario: status=400]] hi"}],
        )
    assert "Scripted error" in caught.value.message


def test_invalid_request_raises_bad_request_error(gateway: ServerProcess, keys: Keys) -> None:
    """A request without a model is a BadRequestError naming the parameter."""
    client = sdk(gateway, keys.full, max_retries=0)
    with client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.param == "model"  # type: ignore[attr-defined]


@pytest.mark.parametrize("scenario", ["error_after=2", "die_after=2", "malformed_after=2"])
def test_failure_mid_stream_raises_api_error(
    gateway: ServerProcess, keys: Keys, scenario: str
) -> None:
    """An error, a dropped connection or a broken chunk mid-stream is the SDK's APIError."""
    with sdk(gateway, keys.full, max_retries=0) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": f"[[scenario: {scenario}]] echo:a b c d e f"}],
        )
        with pytest.raises(openai.APIError) as caught:
            for _ in stream:
                pass
    assert "model provider" in caught.value.message


def test_models_lists_configured_names_and_upstream_models(
    gateway: ServerProcess, keys: Keys
) -> None:
    """GET /v1/models lists aliases, configured models and what a wildcard upstream lists."""
    with sdk(gateway, keys.full) as client:
        names = [m.id for m in client.models.list()]
        assert client.models.retrieve("fast").id == "fast"
    assert {"fast", "flaky-first", "gpt-4o-mini", "gpt-3.5-turbo-instruct"} <= set(names)
