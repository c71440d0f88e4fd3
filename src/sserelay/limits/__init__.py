"""Limits on what one client, and one instance, may ask for at once.

``Limiter`` admits streams (429 / 503 with ``Retry-After`` when a limit is reached) on top of
``Counters``: ``MemoryCounters`` in one process by default, ``RedisCounters`` shared by all
instances (needs the ``redis`` extra, so it is imported only when first used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .counters import NEVER, Counters, Take
from .limiter import ClientLimits, Limiter, LimitExceeded, Permit, estimate_tokens
from .memory_counters import MemoryCounters
from .permits import claim_permit, holding, record_completion_tokens
from .prompt_size import check_prompt_size

if TYPE_CHECKING:
    from .redis_counters import RedisCounters

__all__ = [
    "NEVER",
    "ClientLimits",
    "Counters",
    "LimitExceeded",
    "Limiter",
    "MemoryCounters",
    "Permit",
    "RedisCounters",
    "Take",
    "check_prompt_size",
    "claim_permit",
    "estimate_tokens",
    "holding",
    "record_completion_tokens",
]


def __getattr__(name: str) -> Any:
    if name == "RedisCounters":
        try:
            from .redis_counters import RedisCounters
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "RedisCounters needs the redis client: pip install 'sserelay[redis]'"
            ) from exc
        return RedisCounters
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
