"""What only the memory log does: the process is the producer, so closing it ends its streams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sserelay.streams import End, Ending, Entry, LogClosed, MemoryStreamLog

from .test_stream_log import collect

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def test_closing_truncates_live_streams_for_their_followers(run: Run) -> None:
    """aclose() ends every live stream `truncated`, so no follower is left waiting."""

    async def main() -> list[Any]:
        log = MemoryStreamLog()
        await log.create("s")
        await log.append("s", b"a")
        follower = asyncio.create_task(collect(log, "s"))
        await asyncio.sleep(0)
        await log.aclose()
        return list(await follower)

    assert run(main()) == [Entry(1, b"a"), End(Ending.TRUNCATED)]


def test_closed_log_refuses_further_use(run: Run) -> None:
    """After aclose(), producer calls raise LogClosed instead of acting on a dead log."""

    async def main() -> None:
        log = MemoryStreamLog()
        await log.aclose()
        with pytest.raises(LogClosed):
            await log.create("s")
        with pytest.raises(LogClosed):
            await log.append("s", b"x")

    run(main())
