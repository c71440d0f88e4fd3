"""The in-process stream log: the default when sserelay runs as one process.

Each stream keeps its last ``max_entries`` payloads in a ``RetainedPayloads`` (a deque
that keeps each payload without the prefix and suffix the stream's payloads share), so an
append is O(1); the oldest entries fall off on their own, and ``first_seq`` is derived from
``last_seq`` and the length. Followers waiting for more park a future on the stream, and an
append resolves them only when there are any, so an append nobody waits for allocates
nothing else.

The producer always lives in this process, so the "lease" is the log itself: when the log is
closed, the streams it still holds live end ``truncated`` and their followers are told.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping

from sserelay.speedups import LogStream

from .log import (
    End,
    Ending,
    Entry,
    Gap,
    LogClosed,
    LogItem,
    Moved,
    OnEntries,
    StreamEnded,
    StreamExists,
    StreamInfo,
    StreamLog,
    UnknownStream,
    _nothing,
    call_when_woken,
    park,
    push_tail,
    validate_stream_id,
    wake_all,
)
from .retained import RetainedPayloads

__all__ = ["MemoryStreamLog"]


class _Stream(LogStream):
    """One stream: its entries, `last_seq`, `ending`, the futures of parked followers
    (`waiters`) and the pushed followers (`listeners`, from `tail`) are LogStream's, whose
    `append` (sserelay/speedups.py) keeps a payload and tells them, in one C call."""

    __slots__ = ("cancel_requested", "cancel_waiters", "end_payload", "expiry", "meta",
                 "stream_id")  # fmt: skip
    entries: RetainedPayloads
    ending: Ending | None
    waiters: list[asyncio.Future[None]]
    listeners: list[Callable[[LogItem | Moved], None]]

    def __init__(self, stream_id: str, max_entries: int, meta: dict[str, str]) -> None:
        super().__init__(RetainedPayloads(max_entries), Entry, wake_all)
        self.stream_id = stream_id
        self.end_payload: bytes | None = None
        self.meta = meta
        self.cancel_requested = False
        self.cancel_waiters: list[asyncio.Future[None]] = []
        self.expiry: asyncio.TimerHandle | None = None

    def _refuse(self) -> int:
        raise StreamEnded(self.stream_id)

    @property
    def first_seq(self) -> int:
        return self.last_seq - len(self.entries) + 1




class MemoryStreamLog(StreamLog):
    """Stream logs held in this process's memory."""

    def __init__(self, *, retention: float = 600.0, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.retention = retention
        self.max_entries = max_entries
        self._streams: dict[str, _Stream] = {}
        self._closed = False

    def _get(self, stream_id: str) -> _Stream:
        if self._closed:
            raise LogClosed("the stream log is closed")
        stream = self._streams.get(stream_id)
        if stream is None:
            raise UnknownStream(stream_id)
        return stream

    async def create(
        self, stream_id: str, *, meta: Mapping[str, str] | None = None, fresh: bool = False
    ) -> None:
        validate_stream_id(stream_id)
        if self._closed:
            raise LogClosed("the stream log is closed")
        if stream_id in self._streams:
            raise StreamExists(stream_id)
        self._streams[stream_id] = _Stream(stream_id, self.max_entries, dict(meta or {}))

    async def append(self, stream_id: str, payload: bytes) -> int:
        return self.append_nowait(stream_id, payload)

    def append_nowait(self, stream_id: str, payload: bytes) -> int:
        """`append`, synchronously: for producers that push (relay/generation.py)."""
        stream = self._streams.get(stream_id)  # inline: `_get` is a call per chunk
        if stream is None:
            stream = self._get(stream_id)  # raises: the log is closed, or the id unknown
        return stream.append(payload)

    def appender(self, stream_id: str) -> Callable[[bytes], int]:
        """`append_nowait` for one stream, as the stream's own `append`: a producer that
        pushes calls it per payload with no Python frame (`_Stream`). Once the stream has
        ended, or the log closed (which ends its streams), it raises StreamEnded."""
        return self._get(stream_id).append

    async def end(self, stream_id: str, ending: Ending, payload: bytes | None = None) -> bool:
        return self._end(stream_id, self._get(stream_id), Ending(ending), payload)

    def _end(self, stream_id: str, stream: _Stream, ending: Ending, payload: bytes | None) -> bool:
        if stream.ending is not None:
            return False
        stream.ending, stream.end_payload = ending, payload
        wake_all(stream.waiters)
        listeners, stream.listeners = stream.listeners, []
        for listener in listeners:
            listener(End(ending, payload))
        wake_all(stream.cancel_waiters)
        loop = asyncio.get_running_loop()
        stream.expiry = loop.call_later(self.retention, self._expire, stream_id, stream)
        return True

    def _expire(self, stream_id: str, stream: _Stream) -> None:
        if self._streams.get(stream_id) is stream:
            del self._streams[stream_id]

    async def follow(self, stream_id: str, after: int = 0) -> AsyncGenerator[LogItem, None]:
        if after < 0:
            raise ValueError(f"after must be >= 0, got {after}")
        # Hold the stream object, not the id: expiry mid-follow must not cut a replay short.
        stream = self._get(stream_id)
        pos = after
        while True:
            # Re-read the bounds on every step: appends and trims happen while we are suspended.
            while pos < stream.last_seq:
                first = stream.first_seq
                if pos + 1 < first:
                    yield Gap(pos + 1, first - 1)
                    pos = first - 1
                    continue
                pos += 1
                yield Entry(pos, stream.entries[pos - first])
            if stream.ending is not None:
                yield End(stream.ending, stream.end_payload)
                return
            await park(stream.waiters)

    def tail(
        self, stream_id: str, after: int, on_item: Callable[[LogItem | Moved], None],
        on_entries: OnEntries | None = None,
    ) -> Callable[[], None]:
        if after < 0:
            raise ValueError(f"after must be >= 0, got {after}")
        stream = self._get(stream_id)
        last = End(stream.ending, stream.end_payload) if stream.ending is not None else None
        return push_tail(stream.entries, stream.first_seq, after, last, stream.listeners,
                         on_item, on_entries)  # fmt: skip

    def size(self) -> tuple[int, int]:
        """Streams held (live and retained) and their entries, for /metrics."""
        return len(self._streams), sum(len(s.entries) for s in self._streams.values())

    async def status(self, stream_id: str) -> StreamInfo | None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return None
        return StreamInfo(
            stream_id=stream_id,
            ending=stream.ending,
            last_seq=stream.last_seq,
            first_seq=stream.first_seq,
            meta=dict(stream.meta),
            end_payload=stream.end_payload,
        )

    async def request_cancel(self, stream_id: str) -> bool:
        stream = self._streams.get(stream_id)
        if stream is None or stream.ending is not None:
            return False
        stream.cancel_requested = True
        wake_all(stream.cancel_waiters)
        return True

    async def cancel_requested(self, stream_id: str) -> bool:
        stream = self._streams.get(stream_id)
        return stream is not None and stream.cancel_requested

    def when_cancelled(
        self, stream_id: str, callback: Callable[[], object]
    ) -> Callable[[], object]:
        stream = self._get(stream_id)
        if stream.cancel_requested or stream.ending is not None:
            callback()
            return _nothing
        return call_when_woken(stream.cancel_waiters, callback)

    async def wait_for_cancel(self, stream_id: str) -> bool:
        stream = self._get(stream_id)
        while not stream.cancel_requested and stream.ending is None:
            await park(stream.cancel_waiters)
        return stream.cancel_requested

    async def aclose(self) -> None:
        if self._closed:
            return
        for stream_id, stream in list(self._streams.items()):
            self._end(stream_id, stream, Ending.TRUNCATED, None)
            if stream.expiry is not None:
                stream.expiry.cancel()
        self._streams.clear()
        self._closed = True
