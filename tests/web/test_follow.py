"""A pushed follower (web/follow.py) against the memory log, through a recording channel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

from sserelay.relay.generation import ENDED_IN_LOG
from sserelay.speedups import http_chunk
from sserelay.streams import Ending, MemoryStreamLog
from sserelay.web.follow import _push

Run = Callable[[Coroutine[Any, Any, Any]], Any]


class _Recorder:
    """A client socket that takes every write: what was written, one item per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.sent = 0
        self.gone = False
        self.blocked = False

    def write(self, data: bytes) -> bool:
        return self.write_chunk(http_chunk(data))

    def write_chunk(self, chunk: bytes) -> bool:
        self.writes.append(chunk)
        self.sent += 1
        return True

    async def drain(self) -> None:
        pass


async def _followed(channel: _Recorder, before: list[bytes], after: bytes) -> list[bytes]:
    """What `channel` got: `before` logged before the follower came, `after` once it had
    subscribed, then the end."""
    log = MemoryStreamLog()
    await log.create("s")
    for payload in before:
        await log.append("s", payload)
    pushing = asyncio.create_task(_push(SimpleNamespace(log=log), "s", 0, channel))
    await asyncio.sleep(0)
    await log.append("s", after)
    await log.end("s", Ending.DONE, ENDED_IN_LOG)
    await pushing
    return channel.writes


def test_a_follower_gets_what_was_logged_before_it_came_in_one_write(run: Run) -> None:
    """Entries made before the client asked (a /v1/streams GET after its POST, a resume)
    go out as one HTTP chunk, one write to the socket, not one per entry; the ones after
    that each in the call that appends them, and the ids run on unbroken."""
    before = [b"data: a\n\n", b"data: b\n\n", b"data: c\n\n"]
    writes = run(_followed(_Recorder(), before, b"data: d\n\n"))
    assert writes == [
        http_chunk(b"id: s:1\ndata: a\n\nid: s:2\ndata: b\n\nid: s:3\ndata: c\n\n"),
        http_chunk(b"id: s:4\ndata: d\n\n"),
    ]


class _FullOnce(_Recorder):
    """A socket whose buffer is full after the first write, until drained."""

    def write_chunk(self, chunk: bytes) -> bool:
        super().write_chunk(chunk)
        return len(self.writes) > 1


def test_a_catch_up_the_client_cannot_take_yet_is_not_sent_twice(run: Run) -> None:
    """The catch-up's write fills the socket: the follower waits for it to drain and goes on
    after the catch-up's last entry, each entry once, in order."""
    writes = run(_followed(_FullOnce(), [b"data: a\n\n", b"data: b\n\n"], b"data: c\n\n"))
    caught_up = http_chunk(b"id: s:1\ndata: a\n\nid: s:2\ndata: b\n\n")
    assert b"".join(writes) == caught_up + http_chunk(b"id: s:3\ndata: c\n\n")
