"""What only the memory log does: the process is the producer, so closing it ends its streams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sserelay.streams import End, Ending, Entry, Gap, LogClosed, MemoryStreamLog

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


def test_tail_pushes_the_catch_up_then_each_append_in_the_appending_call(run: Run) -> None:
    """tail(): what is logged after `after` arrives at once, then every append is handed over
    synchronously, before append() returns; the end comes last."""

    async def main() -> None:
        log = MemoryStreamLog()
        await log.create("s")
        for payload in (b"a", b"b", b"c"):
            await log.append("s", payload)
        got: list[Any] = []
        stop = log.tail("s", 1, got.append)
        assert got == [Entry(2, b"b"), Entry(3, b"c")]
        await log.append("s", b"d")
        assert got[-1] == Entry(4, b"d")
        await log.end("s", Ending.DONE, b"fin")
        assert got[-1] == End(Ending.DONE, b"fin")
        stop()

    run(main())


async def _four_entries(max_entries: int) -> MemoryStreamLog:
    """A log keeping `max_entries`, with stream "s" of entries a, b, c, d appended."""
    log = MemoryStreamLog(max_entries=max_entries)
    await log.create("s")
    for payload in (b"a", b"b", b"c", b"d"):
        await log.append("s", payload)
    return log


def test_tail_hands_a_catch_up_of_several_entries_to_on_entries_in_one_call(run: Run) -> None:
    """With `on_entries`, the entries already logged go to it together, after any gap, so a
    follower can write them at once; a single one, and every later append, to `on_item`."""

    async def main() -> None:
        log = await _four_entries(max_entries=3)
        items: list[Any] = []
        batches: list[tuple[int, list[bytes]]] = []
        stop = log.tail("s", 0, items.append, lambda first, got: batches.append((first, got)))
        assert (items, batches) == ([Gap(1, 1)], [(2, [b"b", b"c", b"d"])])
        await log.append("s", b"e")
        assert items[-1] == Entry(5, b"e")
        stop()
        items.clear()
        batches.clear()
        log.tail("s", 4, items.append, lambda first, got: batches.append((first, got)))
        assert (items, batches) == ([Entry(5, b"e")], [])

    run(main())


def test_tail_reports_trimmed_entries_as_a_gap_before_the_rest(run: Run) -> None:
    async def main() -> None:
        log = await _four_entries(max_entries=2)
        got: list[Any] = []
        log.tail("s", 0, got.append)
        assert got == [Gap(1, 2), Entry(3, b"c"), Entry(4, b"d")]

    run(main())


def test_an_unsubscribed_tail_gets_nothing_more(run: Run) -> None:
    async def main() -> None:
        log = MemoryStreamLog()
        await log.create("s")
        got: list[Any] = []
        stop = log.tail("s", 0, got.append)
        await log.append("s", b"a")
        stop()
        await log.append("s", b"b")
        await log.aclose()
        assert got == [Entry(1, b"a")]

    run(main())


def test_closing_the_log_ends_a_tail_truncated(run: Run) -> None:
    async def main() -> None:
        log = MemoryStreamLog()
        await log.create("s")
        got: list[Any] = []
        log.tail("s", 0, got.append)
        await log.aclose()
        assert got == [End(Ending.TRUNCATED)]

    run(main())
