"""Admission: each limit refuses with its own status, code and Retry-After, and a refused
request leaves every count as it was."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sserelay.limits import (
    ClientLimits,
    Limiter,
    LimitExceeded,
    MemoryCounters,
    Permit,
    claim_permit,
    holding,
    record_completion_tokens,
)

Run = Callable[[Coroutine[Any, Any, Any]], Any]


async def refusal(limiter: Limiter, client: str, tokens: int = 0) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as caught:
        await limiter.admit(client, tokens)
    return caught.value


def test_the_instance_limit_is_a_503_until_a_stream_ends(run: Run) -> None:
    """Past max_streams on this instance: 503 with Retry-After; a release makes room."""

    async def scenario() -> None:
        limiter = Limiter(MemoryCounters(), max_streams=2)
        first = await limiter.admit("a")
        await limiter.admit("b")
        refused = await refusal(limiter, "c")
        assert (refused.status, refused.code) == (503, "server_busy")
        assert refused.retry_after is not None and refused.retry_after > 0
        first.release()
        first.release()  # idempotent: frees one stream, not two
        await limiter.admit("c")
        assert limiter.streams == 2
        await limiter.aclose()

    run(scenario())


def test_concurrent_streams_per_client_are_a_429_for_that_client_only(run: Run) -> None:
    """A client at its concurrent-stream limit gets 429 with Retry-After; others do not."""

    async def scenario() -> None:
        limiter = Limiter(MemoryCounters(), ClientLimits(concurrent_streams=1))
        permit = await limiter.admit("a")
        refused = await refusal(limiter, "a")
        assert (refused.status, refused.code) == (429, "concurrent_streams_exceeded")
        assert refused.retry_after
        await limiter.admit("b")
        permit.release()
        await limiter.aclose()  # waits for the release to be counted
        assert limiter.streams == 1

    run(scenario())


def test_a_released_slot_can_be_taken_again(run: Run) -> None:
    """After its stream ends, the client may start another."""

    async def scenario() -> None:
        limiter = Limiter(MemoryCounters(), ClientLimits(concurrent_streams=1))
        (await limiter.admit("a")).release()
        await limiter.settle()
        await limiter.admit("a")
        await limiter.aclose()

    run(scenario())


def test_requests_per_minute_are_a_429_naming_the_limit(run: Run) -> None:
    """The request past the per-minute limit is refused in words with a Retry-After."""

    async def scenario() -> LimitExceeded:
        limiter = Limiter(MemoryCounters(), ClientLimits(requests_per_minute=2))
        for _ in range(2):
            (await limiter.admit("a")).release()
        return await refusal(limiter, "a")

    refused = run(scenario())
    assert (refused.status, refused.code) == (429, "requests_per_minute_exceeded")
    assert "2 requests per minute" in refused.message
    assert refused.retry_after is not None and 0 < refused.retry_after <= 120


def test_tokens_per_minute_count_prompts_and_recorded_completions(run: Run) -> None:
    """Prompt tokens are taken on admission, completion tokens recorded afterwards; either
    can fill the window."""

    async def scenario() -> LimitExceeded:
        limiter = Limiter(MemoryCounters(), ClientLimits(tokens_per_minute=100))
        permit = await limiter.admit("a", 40)
        permit.record_tokens(50)
        permit.release()
        await limiter.settle()
        return await refusal(limiter, "a", 20)

    refused = run(scenario())
    assert (refused.status, refused.code) == (429, "tokens_per_minute_exceeded")


def test_a_prompt_larger_than_the_token_limit_is_a_413(run: Run) -> None:
    """A prompt that could never fit the tokens-per-minute limit is refused as too large,
    not with a Retry-After that would never help."""

    async def scenario() -> LimitExceeded:
        limiter = Limiter(MemoryCounters(), ClientLimits(tokens_per_minute=100))
        return await refusal(limiter, "a", 101)

    refused = run(scenario())
    assert (refused.status, refused.code, refused.retry_after) == (
        413, "prompt_exceeds_token_limit", None
    )


def test_a_refused_request_frees_what_it_had_taken(run: Run) -> None:
    """A request refused by the rate leaves no stream and no slot behind."""

    async def scenario() -> None:
        limiter = Limiter(
            MemoryCounters(), ClientLimits(requests_per_minute=1, concurrent_streams=1)
        )
        (await limiter.admit("a")).release()
        await refusal(limiter, "a")
        await limiter.settle()
        assert limiter.streams == 0
        assert await limiter.counters.acquire("c:a", 1, "someone")

    run(scenario())


def test_a_permit_is_released_when_the_request_ends_unless_claimed(run: Run) -> None:
    """`holding` releases at the end of the request; a claimed permit is the claimer's to
    release (a generation that outlives the response)."""

    async def scenario() -> tuple[int, int, Permit | None]:
        limiter = Limiter(MemoryCounters())
        with holding(await limiter.admit("a")):
            pass
        after_plain = limiter.streams
        with holding(await limiter.admit("a")):
            claimed = claim_permit()
            assert claim_permit() is None  # only once
        after_claimed = limiter.streams
        assert claimed is not None
        claimed.release()
        return after_plain, after_claimed, claim_permit()

    assert run(scenario()) == (0, 1, None)


def test_completion_tokens_are_recorded_once_per_request(run: Run) -> None:
    """The first report of a request's completion tokens counts; later ones and reports
    outside any request do nothing."""

    async def scenario() -> LimitExceeded:
        limiter = Limiter(MemoryCounters(), ClientLimits(tokens_per_minute=100))
        record_completion_tokens(1000)  # no request: ignored
        with holding(await limiter.admit("a")):
            record_completion_tokens(60)
            record_completion_tokens(60)  # a second report of the same request: ignored
        await limiter.settle()
        assert (await limiter.admit("a", 30)).client == "a"
        return await refusal(limiter, "a", 30)

    refused = run(scenario())
    assert refused.code == "tokens_per_minute_exceeded"
