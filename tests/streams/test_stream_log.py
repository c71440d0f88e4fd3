"""The shared suite: every behaviour here holds for the memory log and the Redis log alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextlib import aclosing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sserelay.streams import (
    End,
    Ending,
    Entry,
    Gap,
    LogItem,
    StreamEnded,
    StreamExists,
    StreamLog,
    UnknownStream,
    new_stream_id,
)

from .conftest import LogFactory

Run = Callable[[Coroutine[Any, Any, Any]], Any]


async def collect(log: StreamLog, stream_id: str, after: int = 0) -> list[LogItem]:
    async with aclosing(log.follow(stream_id, after)) as items:
        return [item async for item in items]


async def produce(
    log: StreamLog, payloads: list[bytes], *, meta: dict[str, str] | None = None
) -> str:
    stream_id = new_stream_id()
    await log.create(stream_id, meta=meta)
    for payload in payloads:
        await log.append(stream_id, payload)
    return stream_id


def entries(items: list[LogItem]) -> list[tuple[int, bytes]]:
    return [(item.seq, item.payload) for item in items if isinstance(item, Entry)]


PAYLOADS = [b'{"n":%d}' % n for n in range(1, 21)]


def test_append_returns_consecutive_seqs_from_one(make_log: LogFactory, run: Run) -> None:
    """append numbers a stream's entries 1, 2, 3, ... in call order."""

    async def main() -> list[int]:
        async with make_log() as log:
            await log.create("s1")
            return [await log.append("s1", payload) for payload in PAYLOADS]

    assert run(main()) == list(range(1, 21))


def test_follow_after_end_replays_everything_then_the_end(make_log: LogFactory, run: Run) -> None:
    """A follower arriving after the end gets every entry in order, then exactly one End."""

    async def main() -> list[LogItem]:
        async with make_log() as log:
            stream_id = await produce(log, PAYLOADS)
            await log.end(stream_id, Ending.DONE, b"[DONE]")
            return await collect(log, stream_id)

    items = run(main())
    assert entries(items) == list(enumerate(PAYLOADS, start=1))
    assert items[-1] == End(Ending.DONE, b"[DONE]")
    assert sum(isinstance(item, End) for item in items) == 1


@pytest.mark.parametrize("after", [0, 1, 7, 19, 20, 25])
def test_follow_replays_strictly_after_the_given_seq(
    make_log: LogFactory, run: Run, after: int
) -> None:
    """follow(after=n) yields exactly the entries with seq > n (none past the last), then End."""

    async def main() -> list[LogItem]:
        async with make_log() as log:
            stream_id = await produce(log, PAYLOADS)
            await log.end(stream_id, Ending.DONE)
            return await collect(log, stream_id, after)

    items = run(main())
    assert entries(items) == list(enumerate(PAYLOADS, start=1))[after:]
    assert items[-1] == End(Ending.DONE)


def test_live_followers_get_identical_sequences(make_log: LogFactory, run: Run) -> None:
    """Followers joining before, during and after production all see the same entries and end."""

    async def main() -> list[list[LogItem]]:
        async with make_log() as log:
            stream_id = await produce(log, [])
            early = [asyncio.create_task(collect(log, stream_id)) for _ in range(3)]
            for n, payload in enumerate(PAYLOADS):
                await log.append(stream_id, payload)
                if n % 4 == 0:
                    await asyncio.sleep(0.01)  # let followers park and be woken mid-stream
                if n == 10:
                    early.append(asyncio.create_task(collect(log, stream_id)))
            await log.end(stream_id, Ending.ERROR, b'{"error":"boom"}')
            late = await collect(log, stream_id)
            return [*await asyncio.gather(*early), late]

    results = run(main())
    assert all(result == results[0] for result in results)
    assert entries(results[0]) == list(enumerate(PAYLOADS, start=1))
    assert results[0][-1] == End(Ending.ERROR, b'{"error":"boom"}')


def test_follower_waiting_past_the_last_entry_gets_only_newer_ones(
    make_log: LogFactory, run: Run
) -> None:
    """A follower caught up (or ahead) waits, then receives just the entries after its seq."""

    async def main() -> list[LogItem]:
        async with make_log() as log:
            stream_id = await produce(log, PAYLOADS[:3])
            follower = asyncio.create_task(collect(log, stream_id, after=4))
            await asyncio.sleep(0.05)
            for payload in PAYLOADS[3:6]:
                await log.append(stream_id, payload)
            await log.end(stream_id, Ending.DONE)
            return await follower

    assert run(main()) == [Entry(5, PAYLOADS[4]), Entry(6, PAYLOADS[5]), End(Ending.DONE)]


def test_first_ending_wins(make_log: LogFactory, run: Run) -> None:
    """A second end() changes nothing and returns False; followers see the first ending."""

    async def main() -> tuple[bool, bool, list[LogItem]]:
        async with make_log() as log:
            stream_id = await produce(log, PAYLOADS[:2])
            first = await log.end(stream_id, Ending.CANCELLED, b"usage")
            second = await log.end(stream_id, Ending.DONE)
            return first, second, await collect(log, stream_id, after=2)

    assert run(main()) == (True, False, [End(Ending.CANCELLED, b"usage")])


def test_concurrent_ends_keep_order_and_first_wins(make_log: LogFactory, run: Run) -> None:
    """Two racing end() calls: the first wins, and both land after every earlier append."""

    # Enough queued appends that the writer's pipeline is still arriving as the second end is
    # sent: Redis reads a big pipeline in chunks and serves other connections in between.
    payloads = [b"%d" % n for n in range(1, 3001)]

    async def main() -> tuple[list[bool], list[LogItem]]:
        async with make_log() as log:
            stream_id = await produce(log, [])
            # Have spare connections open, so the second end() is not slowed by connecting.
            await asyncio.gather(*(log.status(stream_id) for _ in range(4)))
            for payload in payloads:
                await log.append(stream_id, payload)
            won = await asyncio.gather(
                log.end(stream_id, Ending.DONE), log.end(stream_id, Ending.CANCELLED)
            )
            return list(won), await collect(log, stream_id)

    won, items = run(main())
    assert won == [True, False]
    assert entries(items) == list(enumerate(payloads, start=1))
    assert items[-1] == End(Ending.DONE)


def test_append_after_end_raises_stream_ended(make_log: LogFactory, run: Run) -> None:
    """Nothing can be appended to a stream once it has ended."""

    async def main() -> None:
        async with make_log() as log:
            stream_id = await produce(log, PAYLOADS[:1])
            await log.end(stream_id, Ending.ABORTED)
            with pytest.raises(StreamEnded):
                await log.append(stream_id, b"late")

    run(main())


def test_create_refuses_an_existing_stream(make_log: LogFactory, run: Run) -> None:
    """create() on a live or retained stream id raises StreamExists."""

    async def main() -> None:
        async with make_log() as log:
            stream_id = await produce(log, [])
            with pytest.raises(StreamExists):
                await log.create(stream_id)
            await log.end(stream_id, Ending.DONE)
            with pytest.raises(StreamExists):
                await log.create(stream_id)

    run(main())


def test_unknown_stream(make_log: LogFactory, run: Run) -> None:
    """An unknown stream has no status, cannot be followed, appended to, or cancelled."""

    async def main() -> None:
        async with make_log() as log:
            assert await log.status("nope") is None
            with pytest.raises(UnknownStream):
                await collect(log, "nope")
            with pytest.raises(UnknownStream):
                await log.append("nope", b"x")
            assert await log.request_cancel("nope") is False
            assert await log.cancel_requested("nope") is False

    run(main())


def test_invalid_stream_ids_are_rejected(make_log: LogFactory, run: Run) -> None:
    """Stream ids must be URL-safe tokens; anything else is a ValueError, not a key."""

    async def main() -> None:
        async with make_log() as log:
            for bad in ["", "a:b", "a b", "x" * 65, "é"]:
                with pytest.raises(ValueError):
                    await log.create(bad)

    run(main())


def test_status_reports_live_then_ended(make_log: LogFactory, run: Run) -> None:
    """status() gives the state, last and first retained seq, the ending and the meta."""

    async def main() -> None:
        async with make_log() as log:
            stream_id = await produce(log, [], meta={"model": "m1", "policy": "continue"})
            info = await log.status(stream_id)
            assert info is not None and info.live
            assert (info.last_seq, info.first_seq) == (0, 1)
            assert dict(info.meta) == {"model": "m1", "policy": "continue"}
            for payload in PAYLOADS[:5]:
                await log.append(stream_id, payload)
            await log.end(stream_id, Ending.ERROR, b"why")
            info = await log.status(stream_id)
            assert info is not None and not info.live
            assert (info.ending, info.end_payload) == (Ending.ERROR, b"why")
            assert (info.last_seq, info.first_seq) == (5, 1)

    run(main())


def test_ended_stream_disappears_after_retention(make_log: LogFactory, run: Run) -> None:
    """After end, a stream is kept for `retention` seconds and then is unknown."""

    async def main() -> None:
        async with make_log(retention=0.3) as log:
            stream_id = await produce(log, PAYLOADS[:3])
            await log.end(stream_id, Ending.DONE)
            assert await log.status(stream_id) is not None
            for _ in range(200):  # bounded: well past the retention, whatever the machine
                if await log.status(stream_id) is None:
                    break
                await asyncio.sleep(0.05)
            assert await log.status(stream_id) is None
            with pytest.raises(UnknownStream):
                await collect(log, stream_id)
            await log.create(stream_id)  # the id is free again

    run(main())


def test_trimmed_entries_are_reported_as_a_gap(make_log: LogFactory, run: Run) -> None:
    """Replaying from before the oldest retained entry first yields a Gap naming what was lost."""

    async def main() -> None:
        async with make_log(max_entries=10) as log:
            payloads = [b"%d" % n for n in range(1, 501)]
            stream_id = await produce(log, payloads)
            await log.end(stream_id, Ending.DONE)
            info = await log.status(stream_id)
            assert info is not None and 1 < info.first_seq <= 491
            for after in (0, info.first_seq - 2):
                items = await collect(log, stream_id, after)
                assert items[0] == Gap(after + 1, info.first_seq - 1)
                assert entries(items) == list(enumerate(payloads, start=1))[info.first_seq - 1 :]
                assert items[-1] == End(Ending.DONE)
            # From the oldest retained entry on, nothing is missing and no gap is reported.
            items = await collect(log, stream_id, info.first_seq - 1)
            assert not any(isinstance(item, Gap) for item in items)

    run(main())


def test_follower_overtaken_by_the_trim_is_told_mid_stream(make_log: LogFactory, run: Run) -> None:
    """A follower that falls behind while the log trims gets a Gap, then contiguous entries."""

    async def main() -> list[LogItem]:
        async with make_log(max_entries=10) as log:
            stream_id = await produce(log, [b"1"])
            async with aclosing(log.follow(stream_id)) as follower:
                items = [await anext(follower)]
                for n in range(2, 501):
                    await log.append(stream_id, b"%d" % n)
                await log.end(stream_id, Ending.DONE)
                items += [item async for item in follower]
            return items

    items = run(main())
    # Where the gap starts depends on how far the follower got before the trim; it must
    # cover exactly what was skipped, with everything before and after it contiguous.
    (gap,) = [item for item in items if isinstance(item, Gap)]
    assert 1 < gap.first <= gap.last < 500
    assert [seq for seq, _ in entries(items)] == [*range(1, gap.first), *range(gap.last + 1, 501)]
    assert items[-1] == End(Ending.DONE)


def test_request_cancel_reaches_the_waiting_producer(make_log: LogFactory, run: Run) -> None:
    """request_cancel() wakes the producer's wait_for_cancel() with True."""

    async def main() -> None:
        async with make_log() as log:
            stream_id = await produce(log, PAYLOADS[:2])
            waiter = asyncio.create_task(log.wait_for_cancel(stream_id))
            await asyncio.sleep(0.02)
            assert not waiter.done()
            assert await log.cancel_requested(stream_id) is False
            assert await log.request_cancel(stream_id) is True
            assert await waiter is True
            assert await log.cancel_requested(stream_id) is True
            await log.end(stream_id, Ending.CANCELLED)
            assert await log.request_cancel(stream_id) is False  # too late: it has ended

    run(main())


def test_wait_for_cancel_returns_false_when_the_stream_ends(make_log: LogFactory, run: Run) -> None:
    """A producer waiting for a cancel is released (False) when its stream ends anyway."""

    async def main() -> bool:
        async with make_log() as log:
            stream_id = await produce(log, [])
            waiter = asyncio.create_task(log.wait_for_cancel(stream_id))
            await asyncio.sleep(0.02)
            await log.end(stream_id, Ending.DONE)
            released = await waiter
            assert await log.wait_for_cancel(stream_id) is False  # already ended: no wait
            return released

    assert run(main()) is False


def test_when_cancelled_calls_back_on_a_cancel_and_not_after_it_stops_waiting(
    make_log: LogFactory, run: Run
) -> None:
    """when_cancelled() calls back once a cancel is requested; a producer that stopped
    waiting is not called back; one registered after the cancel is called at once."""

    async def main() -> tuple[list[str], list[str]]:
        calls: list[str] = []
        async with make_log() as log:
            first = await produce(log, PAYLOADS[:1])
            second = await produce(log, PAYLOADS[:1])
            log.when_cancelled(first, lambda: calls.append("first"))
            stop = log.when_cancelled(second, lambda: calls.append("second"))
            stop()
            await asyncio.sleep(0.02)
            assert calls == []
            await log.request_cancel(first)
            await log.request_cancel(second)
            for _ in range(50):
                if calls:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.02)
            late: list[str] = []
            log.when_cancelled(first, lambda: late.append("late"))
            for _ in range(50):
                if late:
                    break
                await asyncio.sleep(0.01)
            return calls, late

    calls, late = run(main())
    assert calls == ["first"]
    assert late == ["late"]


@settings(
    max_examples=40,
    deadline=None,
    # make_log is a factory; every example builds and closes its own log.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    payloads=st.lists(st.binary(max_size=12), max_size=30),
    disconnects=st.lists(st.integers(min_value=1, max_value=8), max_size=6),
)
def test_refollowing_from_the_last_seen_seq_reassembles_the_stream(
    make_log: LogFactory, run: Run, payloads: list[bytes], disconnects: list[int]
) -> None:
    """A follower that disconnects anywhere and resumes after its last seq loses/repeats nothing."""

    async def main() -> tuple[list[bytes], End]:
        async with make_log() as log:
            stream_id = await produce(log, [])

            async def producer() -> None:
                for n, payload in enumerate(payloads):
                    await log.append(stream_id, payload)
                    if n % 3 == 0:
                        await asyncio.sleep(0)  # interleave with the follower
                await log.end(stream_id, Ending.DONE)

            producing = asyncio.create_task(producer())
            received: list[bytes] = []
            budgets = iter(disconnects)
            while True:
                budget = next(budgets, None)  # entries to read before dropping; None: to the end
                async with aclosing(log.follow(stream_id, len(received))) as items:
                    async for item in items:
                        if isinstance(item, End):
                            await producing
                            return received, item
                        assert isinstance(item, Entry) and item.seq == len(received) + 1
                        received.append(item.payload)
                        if budget is not None and (budget := budget - 1) == 0:
                            break

    received, end = run(main())
    assert received == payloads
    assert end == End(Ending.DONE)
