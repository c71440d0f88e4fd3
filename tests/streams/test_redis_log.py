"""What only the Redis log does: several instances sharing streams, leases, keys and TTLs."""

from __future__ import annotations

import asyncio
import functools
import secrets
import subprocess
import sys
from collections.abc import Callable, Coroutine
from contextlib import aclosing
from typing import Any

import pytest
from redis.asyncio import Redis

import sserelay.streams.redis_log as redis_log_module
from sserelay.streams import (
    End,
    Ending,
    Entry,
    RedisStreamLog,
    StreamLogError,
    UnknownStream,
    new_stream_id,
)
from sserelay.streams.log import MOVED
from sserelay.streams.redis_log import _Keys, _Owned
from sserelay.testing.redis_server import RedisServer

from .test_stream_log import collect

Run = Callable[[Coroutine[Any, Any, Any]], Any]
MakeRedisLog = Callable[..., RedisStreamLog]


async def stored(raw: Redis, log: RedisStreamLog, stream_id: str, entries: int) -> None:
    """Wait until `entries` of the stream are in Redis, not only queued by its writer."""
    async with asyncio.timeout(10):
        while await raw.xlen(f"{log.prefix}{{{stream_id}}}:log") < entries:
            await asyncio.sleep(0.01)


# Another sserelay instance in its own process: it produces three entries, says "ready" once
# they are in Redis, then idles holding the lease until it is killed.
PRODUCER = """
import asyncio, sys
from redis.asyncio import Redis
from sserelay.streams import RedisStreamLog

async def main(url, prefix, stream_id):
    log = RedisStreamLog(url, prefix=prefix, lease_ttl=1.0)
    await log.create(stream_id)
    for n in range(1, 4):
        await log.append(stream_id, b"%d" % n)
    raw = Redis.from_url(url)
    while await raw.xlen(prefix + "{" + stream_id + "}:log") < 3:  # stored, not only queued
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


def test_instances_sharing_redis_see_each_others_streams(redis_log: MakeRedisLog, run: Run) -> None:
    """A stream produced on one instance is followed to its end and inspected from another."""

    async def main() -> None:
        async with redis_log() as producer, redis_log() as other:
            stream_id = new_stream_id()
            await producer.create(stream_id, meta={"model": "m"})
            follower = asyncio.create_task(collect(other, stream_id))
            for n in range(1, 51):
                await producer.append(stream_id, b"%d" % n)
                if n % 10 == 0:
                    await asyncio.sleep(0.01)
            await producer.end(stream_id, Ending.DONE)
            items = await follower
            assert items == [*(Entry(n, b"%d" % n) for n in range(1, 51)), End(Ending.DONE)]
            info = await other.status(stream_id)
            assert info is not None and info.ending is Ending.DONE and info.last_seq == 50
            assert dict(info.meta) == {"model": "m"}

    run(main())


def test_killed_producer_gives_other_followers_a_truncated_end(
    redis_server: RedisServer, redis_log: MakeRedisLog, run: Run
) -> None:
    """When the producing process dies, followers elsewhere get `truncated` after its lease."""
    stream_id = new_stream_id()
    follower_log = redis_log(lease_ttl=1.0)
    argv = [sys.executable, "-c", PRODUCER, redis_server.url, follower_log.prefix, stream_id]
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as producer:
        try:
            assert producer.stdout is not None
            assert producer.stdout.readline() == b"ready\n"

            async def main() -> list[Any]:
                async with follower_log, aclosing(follower_log.follow(stream_id)) as items:
                    seen = [await anext(items) for _ in range(3)]
                    producer.kill()  # SIGKILL: no clean-up, the lease just stops being renewed
                    seen += [item async for item in items]
                    info = await follower_log.status(stream_id)
                    assert info is not None and info.ending is Ending.TRUNCATED
                    return seen

            items = run(main())
        finally:
            producer.kill()
    assert items == [Entry(1, b"1"), Entry(2, b"2"), Entry(3, b"3"), End(Ending.TRUNCATED)]


def test_closing_the_producing_instance_truncates_its_live_streams(
    redis_log: MakeRedisLog, run: Run
) -> None:
    """An instance closed with streams still live ends them `truncated` for every follower."""

    async def main() -> list[Any]:
        async with redis_log() as other:
            producer = redis_log()
            stream_id = new_stream_id()
            await producer.create(stream_id)
            await producer.append(stream_id, b"only")
            follower = asyncio.create_task(collect(other, stream_id))
            await asyncio.sleep(0.05)
            await producer.aclose()
            return list(await follower)

    assert run(main()) == [Entry(1, b"only"), End(Ending.TRUNCATED)]


def test_renewed_lease_keeps_an_idle_stream_live(redis_log: MakeRedisLog, run: Run) -> None:
    """A live producer that is silent for several lease periods is not mistaken for a dead one."""

    async def main() -> list[Any]:
        async with redis_log(lease_ttl=0.3) as producer, redis_log(lease_ttl=0.3) as other:
            stream_id = new_stream_id()
            await producer.create(stream_id)
            follower = asyncio.create_task(collect(other, stream_id))
            await asyncio.sleep(1.5)  # five lease periods with nothing appended
            await producer.append(stream_id, b"late")
            await producer.end(stream_id, Ending.DONE)
            return list(await follower)

    assert run(main()) == [Entry(1, b"late"), End(Ending.DONE)]


def test_cancel_requested_on_another_instance_reaches_the_producer(
    redis_log: MakeRedisLog, run: Run
) -> None:
    """request_cancel() on any instance wakes wait_for_cancel() on the producing one."""

    async def main() -> None:
        async with redis_log() as producer, redis_log() as other:
            stream_id = new_stream_id()
            await producer.create(stream_id)
            waiter = asyncio.create_task(producer.wait_for_cancel(stream_id))
            assert await other.request_cancel(stream_id) is True
            assert await asyncio.wait_for(waiter, 10) is True
            assert await producer.cancel_requested(stream_id) is True

    run(main())


def test_producer_calls_are_refused_on_other_instances(redis_log: MakeRedisLog, run: Run) -> None:
    """Only the instance that created a stream may append to it or wait for its cancel."""

    async def main() -> None:
        async with redis_log() as producer, redis_log() as other:
            stream_id = new_stream_id()
            await producer.create(stream_id)
            with pytest.raises(UnknownStream):
                await other.append(stream_id, b"x")
            with pytest.raises(UnknownStream):
                await other.wait_for_cancel(stream_id)

    run(main())


def test_keys_are_prefixed_and_always_expire(
    redis_server: RedisServer, redis_log: MakeRedisLog, run: Run
) -> None:
    """Every key lives under the prefix and has a TTL, live or ended; the lease goes at the end."""

    async def main() -> None:
        async with (
            redis_log(retention=60, lease_ttl=2.0) as log,
            Redis.from_url(redis_server.url) as raw,
        ):
            stream_id = new_stream_id()
            await log.create(stream_id)
            await log.append(stream_id, b"x")
            base = f"{log.prefix}{{{stream_id}}}:"
            await stored(raw, log, stream_id, 1)
            found: list[Any] = await raw.keys(f"{log.prefix}{{{stream_id}}}*")
            keys = sorted(key.decode() for key in found)
            assert keys == [base + "lease", base + "log", base + "meta"]
            assert all(0 < ttl <= 62_000 for ttl in [await raw.pttl(key) for key in keys])
            await log.end(stream_id, Ending.DONE)
            assert await raw.exists(base + "lease") == 0
            ttls = [await raw.pttl(base + key) for key in ("log", "meta")]
            assert all(0 < ttl <= 60_000 for ttl in ttls)

    run(main())


async def log_made_again(raw: Redis, log: RedisStreamLog) -> str:
    """A live stream whose log key, TTL confirmed, went (evicted) and an append made again;
    its key."""
    stream_id = new_stream_id()
    log_key = f"{log.prefix}{{{stream_id}}}:log"
    await log.create(stream_id)
    await log.append(stream_id, b"x")
    await stored(raw, log, stream_id, 1)
    assert await raw.pttl(log_key) > 0
    await raw.delete(log_key)
    await log.append(stream_id, b"y")
    await stored(raw, log, stream_id, 1)
    return log_key


def test_a_log_made_again_after_it_lost_its_key_gets_a_ttl_from_the_lease_renewal(
    redis_server: RedisServer, redis_log: MakeRedisLog, run: Run
) -> None:
    """The append script sets the log's TTL once; should the key go (evicted) and an append
    make it again, the next lease renewal gives it a TTL: no live stream's key lives forever."""

    async def main() -> None:
        async with (
            redis_log(retention=60, lease_ttl=0.3) as log,
            Redis.from_url(redis_server.url) as raw,
        ):
            log_key = await log_made_again(raw, log)
            async with asyncio.timeout(10):
                while await raw.pttl(log_key) < 0:
                    await asyncio.sleep(0.01)
            assert 0 < await raw.pttl(log_key) <= 60_300

    run(main())


def test_appends_stop_asking_for_the_logs_ttl_once_redis_confirmed_it(
    redis_server: RedisServer, redis_log: MakeRedisLog, run: Run
) -> None:
    """Only appends until the first confirmed one carry the TTL request (a PEXPIRE in the
    script per stream and flush otherwise): a log made again later has none until the
    lease renewal, which here is seconds away."""

    async def main() -> None:
        async with (
            redis_log(retention=60, lease_ttl=30.0) as log,
            Redis.from_url(redis_server.url) as raw,
        ):
            log_key = await log_made_again(raw, log)
            assert await raw.pttl(log_key) == -1  # the key exists, without a TTL

    run(main())


def test_scripts_are_reloaded_after_redis_forgets_them(
    redis_server: RedisServer, redis_log: MakeRedisLog, run: Run
) -> None:
    """Appends, cancels and ends keep working after SCRIPT FLUSH (as after a Redis restart)."""

    async def main() -> list[Any]:
        async with redis_log() as log, Redis.from_url(redis_server.url) as raw:
            stream_id = new_stream_id()
            await log.create(stream_id)
            await log.append(stream_id, b"1")
            await stored(raw, log, stream_id, 1)
            await raw.script_flush()
            await log.append(stream_id, b"2")  # the writer's pipeline meets NOSCRIPT
            await stored(raw, log, stream_id, 2)  # each flush meets its own "restart"
            await raw.script_flush()
            assert await log.request_cancel(stream_id) is True
            await raw.script_flush()
            assert await log.end(stream_id, Ending.CANCELLED) is True
            return list(await collect(log, stream_id))

    assert run(main()) == [Entry(1, b"1"), Entry(2, b"2"), End(Ending.CANCELLED)]


def test_appends_nobody_follows_elsewhere_reach_redis_within_the_unfollowed_window(
    redis_server: RedisServer, redis_log: MakeRedisLog, run: Run
) -> None:
    """With no follower on another instance, no end and no lease renewal due, a queued
    append is still sent: when `unfollowed_flush_interval` has passed."""

    async def main() -> None:
        async with (
            redis_log(lease_ttl=120.0, unfollowed_flush_interval=0.2) as log,
            Redis.from_url(redis_server.url) as raw,
        ):
            stream_id = new_stream_id()
            await log.create(stream_id)
            await log.append(stream_id, b"quiet")
            await stored(raw, log, stream_id, 1)  # within 10 s; the renewal: after 40 s
            await log.end(stream_id, Ending.DONE)

    run(main())


def test_a_follower_elsewhere_gets_entries_without_waiting_for_the_unfollowed_window(
    redis_log: MakeRedisLog, run: Run
) -> None:
    """A follower on another instance tells the producer, which from then on sends the
    stream's entries within `flush_interval`, not the (here 60 s) unfollowed window."""

    async def main() -> list[Any]:
        options: dict[str, Any] = {"lease_ttl": 120.0, "unfollowed_flush_interval": 60.0}
        async with redis_log(**options) as producer, redis_log(**options) as other:
            stream_id = new_stream_id()
            await producer.create(stream_id)
            await producer.append(stream_id, b"before")
            async with aclosing(other.follow(stream_id)) as items:
                async with asyncio.timeout(10):
                    seen = [await anext(items)]
                    await producer.append(stream_id, b"after")
                    seen.append(await anext(items))
            await producer.end(stream_id, Ending.DONE)
            return seen

    assert run(main()) == [Entry(1, b"before"), Entry(2, b"after")]


def test_the_lease_renewal_reads_a_cancel_whose_message_was_lost(
    redis_server: RedisServer, redis_log: MakeRedisLog, run: Run
) -> None:
    """A cancel flag set in the hash without the wake-up message still reaches the producer,
    through its next lease renewal (one call for all its streams); another stream's
    `followed` flag, read in the same call, is not taken for a cancel."""

    async def main() -> tuple[list[str], str]:
        async with (
            redis_log(lease_ttl=0.3) as producer,
            Redis.from_url(redis_server.url) as raw,
        ):
            cancelled, other = new_stream_id(), new_stream_id()
            heard: list[str] = []
            for stream_id in (cancelled, other):
                await producer.create(stream_id)
                producer.when_cancelled(stream_id, functools.partial(heard.append, stream_id))
            await raw.hset(f"{producer.prefix}{{{cancelled}}}:meta", "cancel", "1")
            await raw.hset(f"{producer.prefix}{{{other}}}:meta", "followed", "1")
            async with asyncio.timeout(10):
                assert await producer.wait_for_cancel(cancelled) is True
            await asyncio.sleep(0.5)  # five more renewals
            before_ends = list(heard)  # an end wakes these callbacks too
            for stream_id in (cancelled, other):
                await producer.end(stream_id, Ending.DONE)
            return before_ends, cancelled

    heard, cancelled = run(main())
    assert heard == [cancelled]


def test_the_lease_renewal_reads_a_followed_flag_whose_message_was_lost(
    redis_server: RedisServer, redis_log: MakeRedisLog, run: Run
) -> None:
    """A follower elsewhere sets `followed` and tells the producer; should that message be
    missed, the producer's next lease renewal reads the flag, and from then on the stream's
    entries go out within `flush_interval` instead of the unfollowed window."""

    async def main() -> tuple[bool, bool]:
        options: dict[str, Any] = {"lease_ttl": 0.3, "unfollowed_flush_interval": 60.0}
        async with redis_log(**options) as producer, Redis.from_url(redis_server.url) as raw:
            stream_id = new_stream_id()
            await producer.create(stream_id)
            owned = producer._owned[stream_id]
            before = owned.prompt
            await raw.hset(f"{producer.prefix}{{{stream_id}}}:meta", "followed", "1")
            async with asyncio.timeout(10):  # renewals every 0.1 s
                while not owned.prompt:
                    await asyncio.sleep(0.02)
            await producer.end(stream_id, Ending.DONE)
            return before, owned.prompt

    assert run(main()) == (False, True)


def test_a_fresh_create_produces_at_once_and_its_entries_land_after_it(
    redis_log: MakeRedisLog, run: Run
) -> None:
    """`create(fresh=True)` does not wait for Redis; entries appended right after it, and
    the end, still reach another instance whole and in order, with the stream's meta."""

    async def main() -> tuple[list[Any], dict[str, str]]:
        async with redis_log() as producer, redis_log() as other:
            stream_id = new_stream_id()
            await producer.create(stream_id, meta={"model": "m"}, fresh=True)
            for n in range(1, 4):
                producer.append_nowait(stream_id, b"%d" % n)
            await producer.end(stream_id, Ending.DONE)
            info = await other.status(stream_id)
            assert info is not None
            return list(await collect(other, stream_id)), dict(info.meta)

    items, meta = run(main())
    assert items == [Entry(1, b"1"), Entry(2, b"2"), Entry(3, b"3"), End(Ending.DONE)]
    assert meta == {"model": "m"}


def test_entries_of_a_fresh_stream_wait_for_its_create_behind_another_in_flight(
    redis_server: RedisServer, redis_log: MakeRedisLog, run: Run
) -> None:
    """A create queued while the writer waits on an earlier one still goes before the new
    stream's entries: Redis' writes are paused with the first create in flight."""

    async def main() -> list[Any]:
        async with (
            redis_log() as producer,
            redis_log() as reader,
            Redis.from_url(redis_server.url) as raw,
        ):
            first, second = new_stream_id(), new_stream_id()
            assert await producer.status(first) is None  # started: scripts loaded
            await raw.execute_command("CLIENT", "PAUSE", 500, "WRITE")
            await producer.create(first, fresh=True)
            await asyncio.sleep(0.1)  # its create is sent, and held by the pause
            await producer.create(second, fresh=True)
            producer.append_nowait(second, b"kept")
            await producer.end(second, Ending.DONE)
            await producer.end(first, Ending.DONE)
            return list(await collect(reader, second))

    assert run(main()) == [Entry(1, b"kept"), End(Ending.DONE)]


def test_a_fresh_create_redis_refuses_stops_its_producer_and_touches_no_other_stream(
    redis_log: MakeRedisLog, run: Run
) -> None:
    """Should a `fresh` id be taken after all, the producer's appends start refusing once
    the writer hears, and what it had queued never lands in the other owner's stream."""

    async def main() -> list[Any]:
        async with redis_log() as owner, redis_log() as producer, redis_log() as reader:
            stream_id = new_stream_id()
            await owner.create(stream_id)
            await producer.create(stream_id, fresh=True)  # returns: Redis is asked later
            async with asyncio.timeout(10):
                while True:
                    try:
                        producer.append_nowait(stream_id, b"not yours")
                    except StreamLogError:
                        break
                    await asyncio.sleep(0.01)
            await owner.append(stream_id, b"theirs")
            await owner.end(stream_id, Ending.DONE)
            return list(await collect(reader, stream_id))  # from Redis

    assert run(main()) == [Entry(1, b"theirs"), End(Ending.DONE)]


def test_status_of_a_live_stream_on_its_producer_counts_what_is_queued(
    redis_log: MakeRedisLog, run: Run
) -> None:
    """The producing instance answers status() itself, appends not yet in Redis included;
    once the stream ends the answer comes from Redis, as on every other instance."""

    async def main() -> None:
        async with redis_log(lease_ttl=120.0, unfollowed_flush_interval=60.0) as log:
            stream_id = new_stream_id()
            await log.create(stream_id, meta={"model": "m"})
            log.append_nowait(stream_id, b"one")
            log.append_nowait(stream_id, b"two")
            info = await log.status(stream_id)
            assert info is not None and info.live
            assert (info.first_seq, info.last_seq, dict(info.meta)) == (1, 2, {"model": "m"})
            await log.end(stream_id, Ending.DONE)
            info = await log.status(stream_id)
            assert info is not None and info.ending is Ending.DONE and info.last_seq == 2

    run(main())


def test_tail_pushes_appends_on_the_producing_instance_and_not_elsewhere(
    redis_log: MakeRedisLog, run: Run
) -> None:
    """On the producing instance a tail gets each entry in the append call, from the
    producer's own copy; another instance cannot push (None) and follows through Redis."""

    async def main() -> None:
        async with redis_log() as producer, redis_log() as other:
            stream_id = new_stream_id()
            await producer.create(stream_id)
            await producer.append(stream_id, b"a")
            got: list[Any] = []
            stop = producer.tail(stream_id, 0, got.append)
            assert stop is not None
            assert got == [Entry(1, b"a")]
            producer.append_nowait(stream_id, b"b")
            assert got[-1] == Entry(2, b"b")
            assert other.tail(stream_id, 0, got.append) is None
            await producer.end(stream_id, Ending.DONE)
            assert got[-1] == End(Ending.DONE)
            stop()

    run(main())


def test_append_nowait_refuses_when_redis_falls_far_behind_and_takes_again_once_caught_up(
    redis_server: RedisServer, redis_log: MakeRedisLog, run: Run
) -> None:
    """A pushing producer cannot wait for Redis: past twice high_water queued entries its
    append is refused (the stream then ends truncated) instead of queueing without bound.
    What a flush wrote comes off the count: once Redis has the entries, the producer
    refused a moment ago appends again, with the next seq."""

    async def main() -> None:
        async with redis_log(high_water=2) as log, Redis.from_url(redis_server.url) as raw:
            stream_id = new_stream_id()
            await log.create(stream_id)
            for n in range(4):
                log.append_nowait(stream_id, b"%d" % n)
            with pytest.raises(StreamLogError, match="not keeping up"):
                log.append_nowait(stream_id, b"too many")
            await stored(raw, log, stream_id, 4)
            async with asyncio.timeout(10):  # the writer settles the count after the reply
                while True:
                    try:
                        seq = log.append_nowait(stream_id, b"again")
                        break
                    except StreamLogError:
                        await asyncio.sleep(0.01)
            assert seq == 5

    run(main())


def test_a_local_tail_is_told_moved_when_the_stream_ends_elsewhere(
    redis_log: MakeRedisLog, run: Run
) -> None:
    """When another instance ends the stream (a lapsed lease, say), the producer's copy no
    longer has the end: its pushed tails get MOVED, and follow() through Redis gives it.
    (What the producer appended before its writer learned of the end was already pushed.)"""

    async def main() -> None:
        async with redis_log() as producer, redis_log() as other:
            stream_id = new_stream_id()
            await producer.create(stream_id)
            got: list[Any] = []
            stop = producer.tail(stream_id, 0, got.append)
            assert stop is not None
            await other.end(stream_id, Ending.TRUNCATED)
            producer.append_nowait(stream_id, b"late")  # the writer finds the end in Redis
            for _ in range(200):
                if MOVED in got:
                    break
                await asyncio.sleep(0.01)
            assert got == [Entry(1, b"late"), MOVED]
            assert producer.tail(stream_id, 0, got.append) is None
            async with aclosing(producer.follow(stream_id)) as items:
                assert [item async for item in items] == [End(Ending.TRUNCATED)]

    run(main())


def test_a_burst_of_creates_all_succeed_and_a_duplicate_in_the_burst_is_refused(
    redis_log: MakeRedisLog, run: Run
) -> None:
    """Creates queued together go to Redis in one round trip; each gets its own answer."""
    from sserelay.streams import StreamExists

    async def main() -> tuple[int, int]:
        async with redis_log() as log:
            ids = [new_stream_id() for _ in range(60)]
            results = await asyncio.gather(
                *(log.create(stream_id) for stream_id in [*ids, ids[0]]),
                return_exceptions=True,
            )
            for stream_id in ids:
                await log.append(stream_id, b"x")
            refused = sum(isinstance(r, StreamExists) for r in results)
            live = 0
            for stream_id in ids:
                live += (await log.status(stream_id)) is not None
            return refused, live

    assert run(main()) == (1, 60)


def test_a_flush_redis_does_not_answer_fails_the_stream_within_the_socket_timeout(
    redis_server: RedisServer, run: Run
) -> None:
    """The writer's connection has no socket timeout of its own; each round trip has the
    URL's as a whole. While Redis holds every write, the stream's appends start failing
    long before Redis answers again, instead of queueing behind a flush that never ends."""

    async def main() -> str:
        log = RedisStreamLog(redis_server.url + "?socket_timeout=0.3",
                             prefix=f"test-{secrets.token_hex(6)}:")  # fmt: skip
        raw = Redis.from_url(redis_server.url)
        try:
            stream_id = new_stream_id()
            await log.create(stream_id)
            await raw.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")
            try:
                async with asyncio.timeout(10):  # a third of the pause
                    while True:
                        try:
                            log.append_nowait(stream_id, b"held")
                        except StreamLogError as exc:
                            return str(exc)
                        await asyncio.sleep(0.05)
            finally:
                await raw.execute_command("CLIENT", "UNPAUSE")
        finally:
            await log.aclose()
            await raw.aclose()

    assert run(main()).startswith("writing stream ")


class _Clock:
    """The loop, as far as the unfollowed flush's timing uses it: its time and its timers."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[float] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> object:
        self.timers.append(round(when, 6))
        return object()  # a timer that never fires: the test plays the writer


def _lazy_log(names: str, high_water: int = 100_000) -> tuple[RedisStreamLog, _Clock,
                                                                dict[str, _Owned]]:  # fmt: skip
    """A Redis log whose loop is `_Clock` (nothing connects), producing streams `names`."""
    log = RedisStreamLog("redis://unused", unfollowed_flush_interval=0.05, high_water=high_water)
    clock = _Clock()
    log._loop = clock  # type: ignore[assignment]
    log._work = asyncio.Event()
    owned = {}
    for name in names:
        owned[name] = log._owned[name] = _Owned(name, _Keys(log.prefix, name), 100, False, {},
                                                log._tally, log._pending)  # fmt: skip
    return log, clock, owned


def _queue(log: RedisStreamLog, clock: _Clock, owned: _Owned, at: float) -> None:
    clock.now = at
    owned.mirror.append(b"x")


def _lazy_flush(log: RedisStreamLog, at: float) -> set[str]:
    """What the writer sends when woken at `at`, marked as sent (as `_write` does)."""
    log._lazy = None  # the timer has fired
    batch, log._dirty = log._dirty, {}
    log._take_lazy(batch, at)
    for each in batch.values():
        each.mirror.pending, each.lazy_since = [], None
    return set(batch)


def test_an_awaiting_producer_waits_below_high_water_and_is_never_refused(run: Run) -> None:
    """A producer that can wait (`append`) waits while high_water entries are queued for
    Redis, even past the twice high_water at which a pushing one is refused, and appends
    once the writer has taken them; its entry is not lost or refused."""

    async def main() -> None:
        log, _, owned = _lazy_log("a", high_water=2)
        log._drained = asyncio.Event()
        mirror = owned["a"].mirror
        assert [log.append_nowait("a", b"%d" % n) for n in range(4)] == [1, 2, 3, 4]
        with pytest.raises(StreamLogError, match="not keeping up"):
            log.append_nowait("a", b"refused")
        waiting = asyncio.ensure_future(log.append("a", b"waits"))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not waiting.done() and mirror.last_seq == 4
        mirror.pending, log._tally.count = [], 0  # the writer took them, as `_write` does
        log._drained.set()
        assert await waiting == 5
        assert (mirror.pending, log._tally.count) == ([b"waits"], 1)

    run(main())


def test_a_few_unfollowed_streams_go_out_together_once_a_window() -> None:
    """Up to _LAZY_BATCH streams waiting, the first window to end sends them all, in one
    call, as one timer for all of them always did."""
    log, clock, owned = _lazy_log("abc")
    for name, at in (("a", 0.0), ("b", 0.03), ("a", 0.035), ("c", 0.045)):
        _queue(log, clock, owned[name], at)
    assert clock.timers == [0.05]  # one timer, for the first window to end
    assert _lazy_flush(log, 0.05) == {"a", "b", "c"}
    assert not log._lazy_queue
    _queue(log, clock, owned["b"], 0.06)  # a new window
    assert clock.timers[-1] == 0.11 and _lazy_flush(log, 0.11) == {"b"}


def test_many_unfollowed_streams_are_each_sent_near_the_end_of_their_own_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past _LAZY_BATCH streams waiting (2 here), a lazy flush takes the streams whose
    windows end by then or soon after (a window x _LAZY_BATCH / waiting), not all of them,
    and times the next flush for the first one left; a stream a follower elsewhere made
    prompt goes with the next flush and is not sent again with the lazy ones. So 500
    streams started at different moments go out in calls of ~100, several a window."""
    monkeypatch.setattr(redis_log_module, "_LAZY_BATCH", 2)
    log, clock, owned = _lazy_log("abcdef")
    for name, at in zip("abcdef", (0.0, 0.01, 0.02, 0.03, 0.04, 0.045), strict=True):
        _queue(log, clock, owned[name], at)
    assert clock.timers == [0.05]
    # Six waiting: windows ending within 0.05 x 2/6 of now go.
    assert _lazy_flush(log, 0.05) == {"a", "b"}
    assert clock.timers[-1] == 0.07  # c's window
    log._followed(owned["c"])  # prompt from now on: sent by the next flush, whenever due
    assert _lazy_flush(log, 0.051) == {"c"}  # d's window is not ending: only c
    assert _lazy_flush(log, 0.07) == {"d", "e", "f"}  # c's record skipped, not sent again
    assert not log._lazy_queue
