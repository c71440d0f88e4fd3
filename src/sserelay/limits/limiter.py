"""Admitting a new stream: per-client rates and concurrency, and the instance's capacity.

A client (a client key, or a peer address where no key is presented) may be held to
requests per minute, tokens per minute and concurrent streams; each refusal is a 429 with
`Retry-After`. The instance as a whole takes at most `max_streams` streams at once; past that
it answers 503 with `Retry-After`, so that a load balancer or the client tries elsewhere.

Tokens are counted twice over a request's life: the prompt, estimated at a quarter of the
request's bytes, when it is admitted (it must fit), and the completion tokens when the
stream ends (they are spent whatever the window says by then, so they are added without a
check and weigh on the client's next requests).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from sserelay.settings import Settings

from .counters import NEVER, Counters, Take

__all__ = ["ClientLimits", "LimitExceeded", "Limiter", "Permit", "estimate_tokens"]

log = logging.getLogger("sserelay.limits")

WINDOW = 60.0
# A slot frees when some stream ends, which nobody can predict; a second is a polite retry.
_BUSY_RETRY_AFTER = 1.0


def estimate_tokens(size: int) -> int:
    """Tokens in `size` bytes (or characters) of prompt, before the provider has counted:
    about four per token for English text, the usual rule of thumb."""
    return size // 4


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """What one client may do; None: no limit."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_streams: int | None = None


class LimitExceeded(Exception):
    """A request refused by a limit, in words, with the status and `Retry-After` to send."""

    def __init__(
        self, status: int, message: str, code: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after


class Permit:
    """One admitted stream. `release()` when it ends (idempotent); `record_tokens()` for the
    completion tokens it spent. Both return at once and do their counting in the background."""

    def __init__(self, limiter: Limiter, client: str, holder: str | None) -> None:
        self._limiter = limiter
        self.client = client
        self._holder = holder
        self._released = False

    def record_tokens(self, tokens: int) -> None:
        if tokens > 0 and self._limiter.limits.tokens_per_minute is not None:
            self._limiter.background(
                self._limiter.counters.add(f"t:{self.client}", tokens, self._limiter.window)
            )

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._limiter.streams -= 1
        if self._holder is not None:
            self._limiter.background(
                self._limiter.counters.release(f"c:{self.client}", self._holder)
            )


class Limiter:
    def __init__(
        self,
        counters: Counters,
        limits: ClientLimits | None = None,
        *,
        max_streams: int | None = None,
        window: float = WINDOW,
    ) -> None:
        self.counters = counters
        self.limits = limits or ClientLimits()
        self.max_streams = max_streams
        self.window = window
        self.streams = 0
        """Streams admitted on this instance and not yet released."""
        self._instance = secrets.token_hex(6)
        self._holders = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> Limiter:
        """Counters in Redis when sserelay uses Redis (limits hold across instances), else in
        memory; a limit of 0 means none."""
        counters: Counters
        if settings.redis_url:
            from .redis_counters import RedisCounters

            counters = RedisCounters(settings.redis_url)
        else:
            from .memory_counters import MemoryCounters

            counters = MemoryCounters()
        limits = ClientLimits(
            requests_per_minute=settings.key_requests_per_minute or None,
            tokens_per_minute=settings.key_tokens_per_minute or None,
            concurrent_streams=settings.key_concurrent_streams or None,
        )
        return cls(counters, limits, max_streams=settings.max_streams or None)

    async def admit(self, client: str, prompt_tokens: int = 0) -> Permit:
        """A permit for one more stream of `client`, or `LimitExceeded`."""
        if self.max_streams is not None and self.streams >= self.max_streams:
            raise LimitExceeded(
                503, "This sserelay instance is at its limit of concurrent streams. "
                "Retry shortly (another instance may have room).", "server_busy",
                retry_after=_BUSY_RETRY_AFTER,
            )
        self.streams += 1  # reserved before any await, so concurrent admissions cannot overshoot
        limits = self.limits
        holder: str | None = None
        try:
            if limits.concurrent_streams is not None:
                holder = f"{self._instance}:{next(self._holders)}"
                if not await self.counters.acquire(
                    f"c:{client}", limits.concurrent_streams, holder
                ):
                    holder = None
                    raise LimitExceeded(
                        429, f"This client already has {limits.concurrent_streams} streams "
                        "running, its limit. Retry when one has ended.",
                        "concurrent_streams_exceeded", retry_after=_BUSY_RETRY_AFTER,
                    )
            await self._take_windows(client, prompt_tokens)
        except BaseException:
            self.streams -= 1
            if holder is not None:
                self.background(self.counters.release(f"c:{client}", holder))
            raise
        return Permit(self, client, holder)

    async def _take_windows(self, client: str, prompt_tokens: int) -> None:
        limits = self.limits
        takes, what = [], []
        if limits.requests_per_minute is not None:
            takes.append(Take(f"r:{client}", 1, limits.requests_per_minute))
            what.append(f"{limits.requests_per_minute} requests per minute")
        if limits.tokens_per_minute is not None:
            takes.append(Take(f"t:{client}", prompt_tokens, limits.tokens_per_minute))
            what.append(f"{limits.tokens_per_minute} tokens per minute")
        if not takes:
            return
        waits = await self.counters.take(takes, self.window)
        wait = max(waits)
        if wait == 0:
            return
        if wait == NEVER:
            raise LimitExceeded(
                413, f"This request's prompt (about {prompt_tokens} tokens) is larger than this "
                f"client's limit of {limits.tokens_per_minute} tokens per minute; shorten it.",
                "prompt_exceeds_token_limit",
            )
        limit = what[waits.index(wait)]
        code = "requests" if limit.endswith("requests per minute") else "tokens"
        seconds = math.ceil(wait)
        raise LimitExceeded(
            429, f"This client has reached its limit of {limit}. Retry in {seconds} s.",
            f"{code}_per_minute_exceeded", retry_after=seconds,
        )

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` without waiting for it (counting after the fact, releasing)."""
        task = asyncio.get_running_loop().create_task(_logged(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait until the counting started in the background so far is done."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def aclose(self) -> None:
        await self.settle()
        await self.counters.aclose()


async def _logged(work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except Exception:
        # Counting is best effort: a failure must not surface in a client's stream.
        log.exception("a limit counter update failed")
