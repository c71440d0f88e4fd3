"""The stream log: every relayed stream is a log of already-encoded SSE payloads.

One producer (the relay generating the stream) appends payloads; any number of followers,
possibly on other sserelay instances, read everything strictly after a sequence number and
then wait for more until the stream ends. Sequence numbers are 1-based per stream, and the
SSE id a client sees is ``<stream_id>:<seq>`` (:func:`format_event_id`), which is what makes
``Last-Event-ID`` resumption work on any instance.

A follower receives, in order: an optional :class:`Gap` (entries it asked for were trimmed,
so it is told rather than silently skipped), :class:`Entry` items, and exactly one
:class:`End`. Implementations: :mod:`.memory_log` (one process) and :mod:`.redis_log`
(shared across instances through Redis Streams); both pass the same test suite.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import re
import secrets
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import NamedTuple, Self

__all__ = [
    "End",
    "Ending",
    "Entry",
    "Gap",
    "LogClosed",
    "LogItem",
    "OnEntries",
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

# URL-safe base64 alphabet (what secrets.token_urlsafe produces); the length cap keeps ids
# usable as Redis key parts and in headers. No ":" so "<stream>:<seq>" splits unambiguously.
_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# 18 digits stay below 2**63, so a seq always fits a Redis stream id part.
_SEQ = re.compile(r"[0-9]{1,18}")


class Ending(enum.StrEnum):
    """Why a stream ended. Followers see exactly one, and every follower sees the same one."""

    DONE = "done"
    ERROR = "error"
    ABORTED = "aborted"
    TRUNCATED = "truncated"  # the producer was lost (its lease lapsed) or its log closed
    CANCELLED = "cancelled"


class Entry(NamedTuple):
    """One appended payload.

    A named tuple: one is made per payload for each pushed follower, and building a frozen
    dataclass (`object.__setattr__` per field) cost ~0.9 µs against ~0.25."""

    seq: int
    payload: bytes


# `tuple_new(Entry, (seq, payload))` is `Entry(seq, payload)` without the Python-level
# `__new__` of a named tuple: the same object, ~1.1k fewer instructions (callgrind), once
# per appended payload with a follower.
tuple_new = tuple.__new__


@dataclass(frozen=True, slots=True)
class Gap:
    """Entries ``first`` to ``last`` (inclusive) were trimmed before this follower read them."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class End:
    """The terminal item of every follow: how the stream ended, plus an optional payload."""

    ending: Ending
    payload: bytes | None = None


LogItem = Entry | Gap | End


class Moved:
    """Told to a pushed tail (`StreamLog.tail`) whose items now come from elsewhere: it
    stops, and the follower continues with `follow` after the last seq it saw."""

    __slots__ = ()


MOVED = Moved()


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A snapshot of one stream. ``first_seq`` is ``last_seq + 1`` when nothing is retained."""

    stream_id: str
    ending: Ending | None  # None while live
    last_seq: int
    first_seq: int
    meta: Mapping[str, str] = field(default_factory=dict)
    end_payload: bytes | None = None

    @property
    def live(self) -> bool:
        return self.ending is None


# The catch-up of a pushed follower in one call: the first entry's seq and the payloads.
OnEntries = Callable[[int, list[bytes]], None]


class StreamLogError(Exception):
    """Base class of the stream log's errors."""


class StreamExists(StreamLogError):
    """``create`` was given the id of a stream that is live or still retained."""


class UnknownStream(StreamLogError, LookupError):
    """No such stream (never created, or expired), or a producer-only call on another's stream."""


class StreamEnded(StreamLogError):
    """``append`` on a stream that has ended, possibly ended by someone else (truncated)."""


class LogClosed(StreamLogError):
    """The log was closed while this call was using it."""


def new_stream_id() -> str:
    """A fresh, unguessable, URL-safe stream id."""
    return secrets.token_urlsafe(12)


def validate_stream_id(stream_id: str) -> str:
    """Return ``stream_id`` unchanged, or raise ``ValueError`` if it is not a URL-safe token."""
    if not _STREAM_ID.fullmatch(stream_id):
        raise ValueError(f"invalid stream id {stream_id!r}: expected 1-64 URL-safe characters")
    return stream_id


def format_event_id(stream_id: str, seq: int) -> str:
    """The SSE ``id`` of entry ``seq`` of ``stream_id``."""
    return f"{stream_id}:{seq}"


def parse_event_id(text: str) -> tuple[str, int] | None:
    """``(stream_id, seq)`` from a ``Last-Event-ID``, or None if it is not one of ours.

    Untrusted input (a header or query parameter), so anything malformed is None, not an error.
    """
    stream_id, sep, seq = text.rpartition(":")
    if not sep or not _STREAM_ID.fullmatch(stream_id) or not _SEQ.fullmatch(seq):
        return None
    return stream_id, int(seq)


class StreamLog(abc.ABC):
    """Append-only logs of SSE payloads, one per stream, with live following.

    Producer calls (``create``, ``append``, ``end``, ``wait_for_cancel``) are made on the
    instance that produces the stream; follower calls (``follow``, ``status``,
    ``request_cancel``, ``cancel_requested``) work from any instance sharing the backend.
    """

    retention: float
    max_entries: int

    @abc.abstractmethod
    async def create(
        self, stream_id: str, *, meta: Mapping[str, str] | None = None, fresh: bool = False
    ) -> None:
        """Start a live, empty stream owned by this instance; ``StreamExists`` if taken.

        ``fresh``: the id was just made by `new_stream_id` (96 random bits), so it cannot be
        taken. A shared log may then return before the stream is stored: it stores it before
        any of its entries, and should that fail, the producer's next append refuses."""

    @abc.abstractmethod
    async def append(self, stream_id: str, payload: bytes) -> int:
        """Append one payload and return its seq (1, 2, ...); ``StreamEnded`` once ended."""

    @abc.abstractmethod
    async def end(self, stream_id: str, ending: Ending, payload: bytes | None = None) -> bool:
        """End the stream after everything appended so far; it is kept for ``retention`` s.

        The first ending wins: returns False (and changes nothing) if it had already ended.
        """

    @abc.abstractmethod
    def follow(self, stream_id: str, after: int = 0) -> AsyncGenerator[LogItem, None]:
        """Entries with seq > ``after`` (replay, then live), then exactly one ``End``.

        A ``Gap`` precedes entries when some after ``after`` were trimmed. Raises
        ``UnknownStream`` if the stream does not exist (or expires before it is read). Close
        the iterator (``contextlib.aclosing``) when stopping early.
        """

    def tail(
        self, stream_id: str, after: int, on_item: Callable[[LogItem | Moved], None],
        on_entries: OnEntries | None = None,
    ) -> Callable[[], None] | None:
        """`follow`, pushed: hand `on_item` every item after `after` now, then each new one
        in the call that appends it, until `End` or `MOVED` or until the returned function
        is called. `MOVED`: the rest must be read with `follow`. With `on_entries`, the
        entries of the catch-up, when there are several, go to it in one call instead
        (`on_entries(first_seq, payloads)`).

        Synchronous: nothing is appended between the catch-up and the subscription. A log
        that cannot push returns None (the caller follows instead). Raises `UnknownStream`.
        """
        return None

    @abc.abstractmethod
    async def status(self, stream_id: str) -> StreamInfo | None:
        """A snapshot of the stream, or None if it is unknown or expired."""

    @abc.abstractmethod
    async def request_cancel(self, stream_id: str) -> bool:
        """Ask the producer to stop; True if the stream is live and the request was recorded."""

    @abc.abstractmethod
    async def cancel_requested(self, stream_id: str) -> bool:
        """Whether a cancel was requested for this stream (False if unknown)."""

    @abc.abstractmethod
    async def wait_for_cancel(self, stream_id: str) -> bool:
        """Producer side: wait until a cancel is requested (True) or the stream ends (False)."""

    def when_cancelled(
        self, stream_id: str, callback: Callable[[], object]
    ) -> Callable[[], object]:
        """Producer side: call `callback()` once `wait_for_cancel` would return, and return
        the function that stops waiting. This default waits in a task; the logs park a
        future on the stream instead (a task per generation, only to wait, was ~1.5% of a
        streaming request's CPU)."""
        task = asyncio.ensure_future(self.wait_for_cancel(stream_id))
        task.add_done_callback(lambda done: None if done.cancelled() else callback())
        return task.cancel

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release resources. Streams still live that this instance produces end truncated."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


Listener = Callable[[LogItem | Moved], None]


def push_tail(
    entries: Sequence[bytes],
    first: int,
    after: int,
    last: End | Moved | None,
    listeners: list[Listener],
    on_item: Listener,
    on_entries: OnEntries | None = None,
) -> Callable[[], None]:
    """`StreamLog.tail` over an in-memory copy: `entries` (seq `first` onwards) after
    `after` now (several at once to `on_entries`, if given), then `last` if the stream is
    over, else `on_item` joins `listeners` (to be called by each append) until the returned
    function is called."""
    if after + 1 < first:  # trimmed before this follower read them
        on_item(Gap(after + 1, first - 1))
        after = first - 1
    start = after - first + 1
    if on_entries is not None and len(entries) - start > 1:
        on_entries(after + 1, [entries[index] for index in range(start, len(entries))])
    else:
        for index in range(start, len(entries)):
            on_item(Entry(first + index, entries[index]))
    if last is not None:
        on_item(last)
        return _nothing
    listeners.append(on_item)

    def stop() -> None:
        if on_item in listeners:
            listeners.remove(on_item)

    return stop


def _nothing() -> None:
    pass


def call_when_woken(
    waiters: list[asyncio.Future[None]], callback: Callable[[], object]
) -> Callable[[], object]:
    """Park a future among `waiters` that calls `callback()` when `wake_all` wakes it;
    returns the function that stops waiting."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiter.add_done_callback(lambda done: None if done.cancelled() else callback())
    waiters.append(waiter)
    return waiter.cancel


def wake_all(waiters: list[asyncio.Future[None]]) -> None:
    """Wake every parked follower (a cancelled one leaves a cancelled future behind)."""
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()


async def park(waiters: list[asyncio.Future[None]]) -> None:
    """Wait until `wake_all(waiters)`; the implementations' one way to block a follower."""
    waiter = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    await waiter
