"""Retries with backoff, then fallback to the next upstream: only before the first byte.

Once a byte has reached the client nothing can be retried without the client seeing it twice,
so this wraps only opening a stream (and reading its first event). A 429 or 5xx or a lost
connection is retried on the same upstream, waiting as its `Retry-After` says (bounded by
`max_wait`: a longer wait is not worth holding the client for) or with exponential backoff
and jitter; then the next upstream for the model is tried. A client mistake (400, 404, 422)
would be rejected everywhere, so it is answered at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sserelay.gateway.config import RetryConfig
from sserelay.gateway.router import Route
from sserelay.observability.hooks import upstream_failed, waiting_on_upstream
from sserelay.providers.errors import ProviderError

__all__ = ["with_retries"]

log = logging.getLogger("sserelay.gateway")
T = TypeVar("T")


def _delay(policy: RetryConfig, error: ProviderError, tries: int) -> float:
    if error.retry_after is not None:
        return error.retry_after
    # Jitter, so that many clients refused at once do not all come back at once.
    return policy.backoff * 2.0 ** (tries - 1) * random.uniform(0.5, 1.0)


async def with_retries(
    routes: Sequence[Route],
    attempt: Callable[[Route], Awaitable[T]],
    policy: RetryConfig,
) -> T:
    """`attempt(route)` for each route in turn, retrying as the module says."""
    with waiting_on_upstream():  # all of it, backoff included, is the upstream's time
        return await _attempts(routes, attempt, policy)


async def _attempts(
    routes: Sequence[Route],
    attempt: Callable[[Route], Awaitable[T]],
    policy: RetryConfig,
) -> T:
    last: ProviderError | None = None
    for index, route in enumerate(routes):
        if last is not None:
            log.warning(
                "upstream %s failed (%s); falling back to upstream %s",
                routes[index - 1].provider.name, last.code, route.provider.name,
            )
        for tries in range(1, policy.attempts + 1):
            try:
                return await attempt(route)
            except ProviderError as error:
                last = error
                upstream_failed(route.provider.name, error.upstream_status or error.code)
                if not error.fallback:
                    raise
                if not error.retryable or tries == policy.attempts:
                    break
                delay = _delay(policy, error, tries)
                if delay > policy.max_wait:
                    break
                log.warning(
                    "upstream %s answered %s; retry %d of %d in %.2f s",
                    route.provider.name, error.upstream_status or error.code, tries,
                    policy.attempts - 1, delay,
                )
                await asyncio.sleep(delay)
    assert last is not None, "with_retries needs at least one route"
    raise last
