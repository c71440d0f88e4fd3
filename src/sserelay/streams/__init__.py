"""Stream logs: every relayed stream as a replayable, followable log of SSE payloads.

``MemoryStreamLog`` is the in-process default; ``RedisStreamLog`` shares streams between
sserelay instances and needs the ``redis`` extra, so it is imported only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .log import (
    End,
    Ending,
    Entry,
    Gap,
    LogClosed,
    LogItem,
    Moved,
    StreamEnded,
    StreamExists,
    StreamInfo,
    StreamLog,
    StreamLogError,
    UnknownStream,
    format_event_id,
    new_stream_id,
    parse_event_id,
    validate_stream_id,
)
from .memory_log import MemoryStreamLog

if TYPE_CHECKING:
    from .redis_log import RedisStreamLog

__all__ = [
    "End",
    "Ending",
    "Entry",
    "Gap",
    "LogClosed",
    "LogItem",
    "MemoryStreamLog",
    "Moved",
    "RedisStreamLog",
    "StreamEnded",
    "StreamExists",
    "StreamInfo",
    "StreamLog",
    "StreamLogError",
    "UnknownStream",
    "format_event_id",
    "new_stream_id",
    "parse_event_id",
    "validate_stream_id",
]


def __getattr__(name: str) -> Any:
    if name == "RedisStreamLog":
        try:
            from .redis_log import RedisStreamLog
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "RedisStreamLog needs the redis client: pip install 'sserelay[redis]'"
            ) from exc
        return RedisStreamLog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
