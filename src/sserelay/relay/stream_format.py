"""What a stream's producer reports, and the endings each wire format writes itself.

A stream's format (the article's text events, or OpenAI chat chunks) is recorded with the
stream in the log, so that any instance can end it in the right format: the producer when it
is stopped on purpose, and a follower on another instance when the producer was lost.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sserelay.streams import Ending


@dataclass(slots=True)
class Outcome:
    """Set by a payload producer as it goes: how the stream ended, and chunks relayed."""

    ending: Ending = Ending.DONE
    completion_chunks: int = 0
    # No reader on this instance any more (set and cleared by Generations): an answer that
    # still completes was drained or kept for a resume, and the client's request was aborted.
    readers_left: bool = False


@dataclass(frozen=True, slots=True)
class StreamFormat:
    name: str
    # The payloads that end a stream stopped on purpose (DELETE, or nobody left to read).
    stopped: Callable[[Outcome], list[bytes]]
    # The payloads that end a stream whose producing instance died (typed `truncated`).
    lost: Callable[[], list[bytes]]


# Called by a pushing producer with each payload; False: stop, the log takes no more.
Emit = Callable[[bytes], bool]


class Pushed(abc.ABC):
    """A producer that can push its payloads (`run`) as well as yield them (async iteration).

    `run(emit)` calls `emit` with each payload, in order, in the same call that read the
    upstream bytes it comes from, and returns when the stream has ended; the ending and the
    end marker are payloads too, as when iterating. `Generations` pushes into a log that
    appends synchronously and iterates otherwise. Either way `aclose()` comes last.
    """

    @abc.abstractmethod
    async def run(self, emit: Emit) -> None: ...

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...
