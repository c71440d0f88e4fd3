"""The stream log in Redis Streams, shared by every sserelay instance using one Redis.

Layout (``prefix`` defaults to ``sserelay:``): ``{prefix}{id}:log`` a Redis Stream,
``{prefix}{id}:meta`` a hash (``owner``, ``ending``, ``end_payload``, ``cancel``, user meta as
``m:<key>``), ``{prefix}{id}:lease`` the producer's lease, and
``{prefix}instance:<instance_id>`` each instance's wake-up stream. Tested on Redis 7.0.

Writes. The producer owns its stream (it holds the lease), so it assigns seqs locally and
writes entry ``n`` with the explicit id ``0-n``. ``append`` only queues the payload and
returns; one writer task sends everything queued, for all streams, in one pipeline, and
whatever is appended while that round trip is in flight goes in the next one. So no append
waits for Redis, the batch size follows the load (one entry when idle, hundreds under load),
and an entry reaches Redis within its flush window (below) and one round trip. The trade-off:
a returned seq is queued, not yet stored; if this process dies, what was queued is lost,
which is exactly the ``truncated`` end followers are told about. Explicit ids make a retried
XADD harmless (Redis rejects the duplicate) and make any lost or trimmed entry visible to
readers as a jump in seq.
A flush is one Lua call (EVALSHA) carrying every queued payload of every stream: with one
XADD command per entry, redis-py's packing and reply parsing cost ~18 µs of relay CPU per
entry; as one call it is ~1 µs (Redis' own work is ~2 µs). Above ``high_water`` queued
payloads, ``append`` waits for the writer (backpressure).

How soon a flush comes depends on who reads the stream. Followers on the producing instance
read its own copy, never Redis; so while no other instance follows a stream, Redis holds only
what outlives the producer, and its entries wait up to ``unfollowed_flush_interval`` (50 ms)
from the first of them. Each stream's window is its own: with more than ~100 streams
waiting, a flush carries only those whose windows are ending, so 500 streams started at
different moments go out in calls of ~100, not in one call carrying all of them, which
stalled the loop and redis-server for several ms. The first follower on another instance
tells the producer through its wake-up stream (``_TELL``; the lease renewal reads the same
flag from the hash, should that message be missed), and from then on the stream's entries
go out within ``flush_interval`` (2 ms). At 100 streams x 50 tok/s that is ~20 round trips
a second instead of ~500: the relay's CPU per chunk fell from ~35 µs to ~25
(docs/decisions.md, "The Redis log's flush window"). The producing instance answers
``status`` of its live streams itself.

The end is the entry ``1-0``: it sorts after every data entry, so followers reading with XREAD
see it in order and are woken by it like by data; and once it exists Redis rejects any
later ``0-n``, so the first ending wins atomically (a Lua script also records it in the hash,
sets the retention TTL and drops the lease).

Reads. One connection per instance blocks in a single XREAD over every stream that has
followers here plus the instance's wake-up stream (an XADD to it interrupts the XREAD when a
new stream must be watched, or carries a cancel request). New entries go to a small buffer
per stream that all local followers read, so a caught-up follower costs no Redis traffic per
chunk, however many there are. A follower behind that buffer (a replay) catches up with its
own non-blocking XREADs from a pool of at most ``max_connections`` (default 32; callers wait
for a free one rather than fail). So an instance holds at most ``max_connections + 1``
connections whatever the number of followers. The reader's XREAD and the writer's script span
many streams' keys, which rules out Redis Cluster.

Producer loss. The lease (``SET PX lease_ttl``) is renewed every ``lease_ttl / 3`` through the
writer's pipeline, ordered with the writes, so a renewal can never outlive an end. Live keys
get a TTL of ``lease_ttl + retention`` on each renewal, so a dead producer's stream is cleaned
up even if nobody follows it. A follower waits at most ``lease_ttl / 2`` before checking the
lease; when it has lapsed the follower writes the ``truncated`` end for everyone. Followers
thus learn of a lost producer within about 1.5 x ``lease_ttl``.

Trimming uses ``MAXLEN ~ max_entries``: Redis drops whole internal nodes, which is much cheaper
than exact trimming, so at least ``max_entries`` are kept; gaps are still reported exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError, ResponseError

from ..deadline import deadline
from ..speedups import LogStream, Tally, resp_command
from .log import (
    MOVED,
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
    StreamLogError,
    UnknownStream,
    call_when_woken,
    park,
    push_tail,
    validate_stream_id,
    wake_all,
)
from .retained import RetainedPayloads

__all__ = ["RedisStreamLog"]

# KEYS: log, meta, lease. ARGV: owner, lease ms, live TTL ms, then user meta field/value pairs.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'owner', ARGV[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS: log1, meta1, log2, meta2, ... ARGV: max entries, live TTL ms, owner, then per stream:
# seq of its first payload, payload count, 1 if its log still needs its TTL, payloads. One
# call per flush, whatever the number of streams (see the module docstring). Per stream: 0
# if it has ended (or expired, or is not this owner's: a `fresh` create Redis refused) so
# its producer stops, else 1 if written, 2 if written and its log has its TTL now. The log
# gets its TTL here once (the first XADD makes it); the lease renewal keeps it after that.
# A retried pipeline re-sends entries already stored; Redis refuses those ids and pcall
# skips them. Any other refused entry (OOM) reaches followers as a Gap.
_APPEND = """
local written, arg = {}, 4
for k = 1, #KEYS, 2 do
  local seq, count = tonumber(ARGV[arg]), tonumber(ARGV[arg + 1])
  local expire = ARGV[arg + 2] == '1'
  arg = arg + 3
  local owner, ending = unpack(redis.call('HMGET', KEYS[k + 1], 'owner', 'ending'))
  if owner ~= ARGV[3] or ending then
    written[#written + 1] = 0
  else
    for i = arg, arg + count - 1 do
      redis.pcall('XADD', KEYS[k], 'MAXLEN', '~', ARGV[1], '0-' .. seq, 'd', ARGV[i])
      seq = seq + 1
    end
    if expire and redis.call('PEXPIRE', KEYS[k], ARGV[2]) == 1 then
      written[#written + 1] = 2
    else
      written[#written + 1] = 1
    end
  end
  arg = arg + count
end
return written
"""
# KEYS: log, meta, lease. ARGV: ending, payload, has payload, retention ms, only if lease lapsed.
# Returns 1 if this call ended the stream, 0 if it had ended (or the lease is held), -1 unknown.
_END = """
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[2], 'ending') == 1 then return 0 end
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if ARGV[3] == '1' then
  redis.call('XADD', KEYS[1], '1-0', 'e', ARGV[1], 'p', ARGV[2])
  redis.call('HSET', KEYS[2], 'ending', ARGV[1], 'end_payload', ARGV[2])
else
  redis.call('XADD', KEYS[1], '1-0', 'e', ARGV[1])
  redis.call('HSET', KEYS[2], 'ending', ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('DEL', KEYS[3])
return 1
"""
# KEYS: meta. ARGV: wake-up stream prefix, stream id, flag, message field. Another instance
# tells a live stream's producer something: a cancel (flag `cancel`, field `c`) or that it
# follows the stream (`followed`, `f`, after which the producer sends its entries within
# `flush_interval`). The flag goes in the hash once (HSETNX); the first time, the producer
# also gets a message on its wake-up stream, named from the hash (fine outside Cluster).
# Should that message be missed, the producer's next lease renewal reads the flag. Atomic,
# so a stream expiring meanwhile is not recreated without a TTL. Returns 1 if it is live.
_TELL = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner or redis.call('HEXISTS', KEYS[1], 'ending') == 1 then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[3], '1') == 1 then
  local wake = ARGV[1] .. owner
  if redis.call('EXISTS', wake) == 1 then
    redis.call('XADD', wake, 'MAXLEN', '~', 100, '*', ARGV[4], ARGV[2])
  end
end
return 1
"""
# KEYS: lease, meta, log of each live stream produced here. ARGV: owner, lease ms, live TTL ms.
# The lease renewal, for all of them in one call (a command each was ~2000 replies to parse
# at 500 streams, a 10-20 ms stall of the event loop every lease_ttl / 3). Returns, per
# stream, whether a cancel was requested and whether another instance follows it.
_RENEW = """
local flags = {}
for k = 1, #KEYS, 3 do
  redis.call('SET', KEYS[k], ARGV[1], 'PX', ARGV[2])
  redis.call('PEXPIRE', KEYS[k + 1], ARGV[3])
  redis.call('PEXPIRE', KEYS[k + 2], ARGV[3])
  local cancel, followed = unpack(redis.call('HMGET', KEYS[k + 1], 'cancel', 'followed'))
  flags[#flags + 1] = cancel and 1 or 0
  flags[#flags + 1] = followed and 1 or 0
end
return flags
"""
_BUFFER = 64  # entries each watched stream keeps for local followers
_READER_BLOCK_MS = 10_000  # only bounds how long a dead connection goes unnoticed
_WAKE_TTL_MS = 86_400_000
# An unfollowed stream's window is its own. With up to _LAZY_BATCH streams waiting, a lazy
# flush sends them all, as one call per window; with more, only those whose windows end
# within _LAZY_BATCH / waiting of a window: calls of about _LAZY_BATCH streams, several per
# window, rather than one call with every stream in it (docs/decisions.md, "The Redis log's
# unfollowed flush, spread").
_LAZY_BATCH = 100


class _Keys:
    __slots__ = ("lease", "log", "meta")

    def __init__(self, prefix: str, stream_id: str) -> None:
        base = f"{prefix}{{{validate_stream_id(stream_id)}}}:"
        self.log, self.meta, self.lease = base + "log", base + "meta", base + "lease"


class _Owned:
    """What the producing instance keeps per live stream: its copy (`mirror`), which also
    counts the seqs and queues the entries for Redis, and what the writer needs to know."""

    __slots__ = ("_ended", "_failure", "cancel_requested", "cancel_waiters", "end", "keys",
                 "lazy_since", "log_expires", "meta", "mirror", "prompt", "stream_id")  # fmt: skip

    def __init__(self, stream_id: str, keys: _Keys, max_entries: int, prompt: bool,
                 meta: Mapping[str, str], tally: Tally,
                 on_pending: Callable[[_Mirror], None]) -> None:  # fmt: skip
        self.stream_id, self.keys, self.meta = stream_id, keys, meta
        # Its appends wake the writer (sent within flush_interval): it is followed on
        # another instance. Otherwise they wait up to unfollowed_flush_interval.
        self.prompt = prompt
        # When its oldest entry not yet sent was queued, while it waits in the unfollowed
        # window (RedisStreamLog._lazy_queue); None when it has nothing waiting there.
        self.lazy_since: float | None = None
        # Its log in Redis has its TTL (the append script sets it once; renewals keep it).
        self.log_expires = False
        self.mirror = _Mirror(max_entries, self, tally, on_pending)
        self._ended = False
        self.end: tuple[Ending, bytes | None, asyncio.Future[int]] | None = None
        self._failure: BaseException | None = None
        self.cancel_requested = False
        self.cancel_waiters: list[asyncio.Future[None]] = []

    @property
    def ended(self) -> bool:
        """Its end is queued or done (here or elsewhere): appends are refused."""
        return self._ended

    @ended.setter
    def ended(self, ended: bool) -> None:
        self._ended = ended
        self._refuse_appends()

    @property
    def failure(self) -> BaseException | None:
        """Why writing it to Redis failed, if it did: appends are refused."""
        return self._failure

    @failure.setter
    def failure(self, failure: BaseException | None) -> None:
        self._failure = failure
        self._refuse_appends()

    def _refuse_appends(self) -> None:
        # The mirror's append (in C) calls its `_refuse` once `ending` is not None.
        if self._ended or self._failure is not None:
            self.mirror.ending = True


class _Mirror(LogStream):
    """The producing instance's own copy of a live stream, for followers on this instance.

    A follower here reads the entries from memory as they are appended instead of through
    Redis: the shared XREAD and redis-py's reply parsing were most of the Redis log's cost
    per chunk (docs/decisions.md, "The hot path"), and a follower on the producing instance
    dies with the producer anyway. It holds the last `max_entries`, like the log.

    Its `append` is the memory log's (LogStream, sserelay/speedups.py), and it is the
    producer's append: the entry kept, its seq counted, queued for Redis (`pending`, counted
    in the log's `tally`, the writer told through `on_pending` when a stream's queue starts),
    parked followers woken and pushed ones handed it, in one C call. The end is `end`;
    `ending` is only set (True) to have appends refused (`_Owned.ended`, `_Owned.failure`).
    """

    __slots__ = ("end", "gone", "owner")
    entries: RetainedPayloads
    waiters: list[asyncio.Future[None]]
    listeners: list[Callable[[LogItem | Moved], None]]
    pending: list[bytes]
    tally: Tally

    def __init__(self, max_entries: int, owner: _Owned, tally: Tally,
                 on_pending: Callable[[_Mirror], None]) -> None:  # fmt: skip
        super().__init__(RetainedPayloads(max_entries), Entry, wake_all)
        self.end: End | None = None
        self.gone = False  # the end went elsewhere (or failed): followers switch to Redis
        self.owner = owner
        self.pending, self.tally, self.on_pending = [], tally, on_pending

    def _refuse(self) -> int:
        """Why an append is refused: Redis too far behind, the stream ended, or a write
        failed (in that order)."""
        owned = self.owner
        if self.tally.count >= self.tally.limit:
            raise StreamLogError("Redis is not keeping up with the stream's entries")
        if owned.ended:
            raise StreamEnded(owned.stream_id)
        raise StreamLogError(
            f"writing stream {owned.stream_id} to Redis failed"
        ) from owned.failure

    @property
    def first(self) -> int:
        """The seq of entries[0]."""
        return self.last_seq - len(self.entries) + 1

    def finish(self, end: End | None) -> None:
        """The stream ended here with `end`, or (None) its end must be read from Redis."""
        if end is None:
            self.gone = True
        else:
            self.end = end
        wake_all(self.waiters)
        listeners, self.listeners = self.listeners, []
        for listener in listeners:
            listener(MOVED if end is None else end)

    def tail(self, after: int, on_item: Callable[[LogItem | Moved], None],
             on_entries: OnEntries | None = None) -> Callable[[], None]:
        """`RedisStreamLog.tail` from this copy: the catch-up now, then each push."""
        last = self.end if self.end is not None else (MOVED if self.gone else None)
        return push_tail(self.entries, self.first, after, last, self.listeners, on_item,
                         on_entries)  # fmt: skip


class _Watch:
    """The shared reader's view of one stream: the entries in (base, seen], newest last."""

    __slots__ = ("armed", "base", "ended", "followers", "items", "seen", "waiters")

    def __init__(self) -> None:
        self.followers = 0
        self.armed = False  # the reader XREADs this stream from `seen`
        self.base = self.seen = 0
        self.ended = False
        self.items: deque[Entry | End] = deque()
        self.waiters: list[asyncio.Future[None]] = []

    def after(self, pos: int) -> list[Entry | End] | None:
        """Buffered items after ``pos``, or None if the buffer does not reach back to it."""
        if not self.armed or pos < self.base:
            return None
        items, i = self.items, len(self.items)
        # Scan from the newest: a caught-up follower wants the last one or two.
        while i and not (isinstance(item := items[i - 1], Entry) and item.seq <= pos):
            i -= 1
        return [items[j] for j in range(i, len(items))]

    def push(self, item: Entry | End) -> None:
        if len(self.items) == _BUFFER and isinstance(dropped := self.items.popleft(), Entry):
            self.base = dropped.seq
        self.items.append(item)
        if isinstance(item, Entry):
            self.seen = item.seq
        else:
            self.ended = True


def _decode(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Entry | End]:
    items: list[Entry | End] = []
    for entry_id, fields in raw:
        if entry_id.startswith(b"0-"):
            items.append(Entry(int(entry_id[2:]), fields[b"d"]))
        else:  # "1-0", the end
            items.append(End(Ending(fields[b"e"].decode()), fields.get(b"p")))
    return items




class RedisStreamLog(StreamLog):
    """Stream logs in Redis Streams; see the module docstring for the design."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "sserelay:",
        retention: float = 600.0,
        max_entries: int = 10_000,
        lease_ttl: float = 5.0,
        max_connections: int = 32,
        read_batch: int = 512,
        high_water: int = 100_000,
        flush_interval: float = 0.002,
        unfollowed_flush_interval: float = 0.05,
    ) -> None:
        if max_entries < 1 or lease_ttl <= 0 or retention < 0:
            raise ValueError("need max_entries >= 1, lease_ttl > 0, retention >= 0")
        self.url, self.prefix = url, prefix
        self.retention, self.max_entries, self.lease_ttl = retention, max_entries, lease_ttl
        self.instance_id = secrets.token_urlsafe(9)
        self._max_connections, self._read_batch = max_connections, read_batch
        self._high_water = high_water
        self.flush_interval = flush_interval
        self.unfollowed_flush_interval = max(flush_interval, unfollowed_flush_interval)
        # No longer window for unfollowed streams: every stream's appends wake the writer.
        self._all_prompt = self.unfollowed_flush_interval <= flush_interval
        self._lazy: asyncio.TimerHandle | None = None  # the flush of unfollowed appends
        # Unfollowed streams with entries waiting, by when the first of them was queued
        # (`_Owned.lazy_since`; a record whose stream was sent since is stale): `_take_lazy`.
        self._lazy_queue: deque[tuple[float, _Owned]] = deque()
        self._write_conn: AbstractConnection | None = None  # the writer's own (_pipeline)
        self._write_timeout: float | None = None
        self._lease_ms = max(1, round(lease_ttl * 1000))
        self._retention_ms = max(1, round(retention * 1000))
        self._live_ttl_ms = self._lease_ms + self._retention_ms
        self._wake_key = f"{prefix}instance:{self.instance_id}"
        self._owned: dict[str, _Owned] = {}
        self._dirty: dict[str, _Owned] = {}  # streams with queued writes, for the writer
        # Creates queued for the writer: the command, and the future awaiting its result.
        self._creating: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        # Entries queued for Redis over all streams; a pushing producer is refused at twice
        # high_water (`append_nowait`), an awaiting one waits below high_water (`append`).
        self._tally = Tally(2 * high_water)
        self._watches: dict[bytes, _Watch] = {}
        self._closed = False
        self._start: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def _ready(self) -> Redis:
        if self._closed:
            raise LogClosed("the stream log is closed")
        if self._start is None:
            self._start = asyncio.create_task(self._open())
        # Shielded: one caller being cancelled must not cancel the start-up others await.
        await asyncio.shield(self._start)
        return self._redis

    async def _open(self) -> None:
        pool = BlockingConnectionPool.from_url(
            self.url, max_connections=self._max_connections, timeout=None
        )
        self._redis = Redis.from_pool(pool)
        # The reader blocks for up to _READER_BLOCK_MS, longer than the default socket timeout.
        self._reader = Redis.from_url(
            self.url, single_connection_client=True, socket_timeout=_READER_BLOCK_MS / 1000 + 5
        )
        self._loop = asyncio.get_running_loop()
        self._work = asyncio.Event()  # the writer has something to do
        self._drained = asyncio.Event()  # the queue fell below high_water
        self._renew_due = False
        try:
            await self._load_scripts()
            # Create the wake-up stream now: request_cancel only XADDs to one that exists.
            await self._poke_reader(b"start")
        except BaseException:
            self._start = None  # let the next call try again
            await self._reader.aclose()
            await self._redis.aclose()
            raise
        self._tasks = [
            asyncio.create_task(self._write_forever()),
            asyncio.create_task(self._tick_forever()),
            asyncio.create_task(self._read_forever()),
        ]

    async def _load_scripts(self) -> None:
        sources = {"create": _CREATE, "append": _APPEND, "end": _END, "tell": _TELL,
                   "renew": _RENEW}
        self._scripts = {name: await self._redis.script_load(src) for name, src in sources.items()}

    async def _script(self, name: str, *numkeys_keys_args: Any) -> Any:
        try:
            return await self._redis.evalsha(self._scripts[name], *numkeys_keys_args)
        except NoScriptError:  # Redis restarted, or its script cache was flushed
            await self._load_scripts()
            return await self._redis.evalsha(self._scripts[name], *numkeys_keys_args)

    async def _pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Run commands in one round trip; every error is returned in its command's place.

        On the writer's own connection, not through redis-py's `Pipeline`: its connection
        checkout, retry wrapper and response callbacks cost ~10% of the relay's CPU with the
        Redis log at 100 streams (py-spy), for replies the writer reads raw anyway.
        """
        for attempt in range(2):
            conn = self._write_conn if self._write_conn is not None else self._writer_connection()
            results: list[Any] = []
            try:
                # One deadline for the round trip: the connection has no socket timeout of
                # its own, which redis-py enforces with a task (wait_for) per send and a
                # timeout context per reply, ~4% of the relay's CPU with the Redis log.
                async with deadline(self._write_timeout):
                    await conn.send_packed_command([resp_command(c) for c in commands],
                                                   check_health=False)  # fmt: skip
                    for _ in commands:
                        try:
                            results.append(await conn.read_response())
                        except ResponseError as exc:
                            results.append(exc)
            except BaseException:
                await conn.disconnect()  # the replies are out of step now: start afresh
                raise
            if attempt or not any(isinstance(result, NoScriptError) for result in results):
                break
            # Every command the writer sends may run twice (see _APPEND), so just run it again.
            await self._load_scripts()
        return results

    def _writer_connection(self) -> AbstractConnection:
        """The writer's own connection, configured as the pool's but for its socket timeout,
        which `_pipeline` applies to each round trip as a whole instead."""
        pool = self._redis.connection_pool
        kwargs = dict(pool.connection_kwargs)
        self._write_timeout = kwargs.get("socket_timeout")
        kwargs["socket_timeout"] = None
        conn: AbstractConnection = pool.connection_class(**kwargs)
        self._write_conn = conn
        return conn

    async def _poke_reader(self, field: bytes, value: bytes = b"") -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.xadd(self._wake_key, {field: value}, maxlen=100, approximate=True)
        pipe.pexpire(self._wake_key, _WAKE_TTL_MS)
        await pipe.execute()

    async def aclose(self) -> None:
        if self._closed:
            return
        if self._start is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._start)
        if not self._tasks:  # never started, or start-up failed and cleaned up after itself
            self._closed = True
            return
        # End what we still produce now, rather than leave other followers to the lease.
        ends = [self.end(sid, Ending.TRUNCATED) for sid, o in self._owned.items() if not o.ended]
        await asyncio.gather(*ends, return_exceptions=True)
        self._closed = True
        with contextlib.suppress(RedisError):
            await self._poke_reader(b"close")  # returns the reader from its XREAD
        writer, ticker, reader = self._tasks
        if self._lazy is not None:
            self._lazy.cancel()
        writer.cancel()
        ticker.cancel()
        creating, self._creating = self._creating, []
        for _, created in creating:
            if not created.done():
                created.set_exception(LogClosed("the stream log is closed"))
        await asyncio.wait([reader], timeout=5)
        reader.cancel()  # in case the poke did not get through
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for watch in self._watches.values():
            for waiter in watch.waiters:
                if not waiter.done():
                    waiter.set_exception(LogClosed("the stream log is closed"))
        with contextlib.suppress(RedisError):
            await self._redis.delete(self._wake_key)
        if self._write_conn is not None:
            await self._write_conn.disconnect()
        await self._reader.aclose()
        await self._redis.aclose()

    # -- producer ----------------------------------------------------------------------------

    async def create(
        self, stream_id: str, *, meta: Mapping[str, str] | None = None, fresh: bool = False
    ) -> None:
        keys = _Keys(self.prefix, stream_id)
        await self._ready()
        args: list[str | int] = [self.instance_id, self._lease_ms, self._live_ttl_ms]
        for name, value in (meta or {}).items():
            args += (f"m:{name}", value)
        # Sent by the writer, with the other creates queued meanwhile: one round trip for a
        # burst of new streams, on the writer's own connection (redis-py's command path was
        # ~25% of a Redis-logged request's CPU; docs/decisions.md, "Per-request work").
        created: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        command = ("EVALSHA", self._scripts["create"], 3, keys.log, keys.meta, keys.lease, *args)
        self._creating.append((command, created))
        self._work.set()
        owned = _Owned(stream_id, keys, self.max_entries, self._all_prompt, dict(meta or {}),
                       self._tally, self._pending)  # fmt: skip
        if fresh and stream_id not in self._owned:
            # Producing starts now, not a round trip later: under a burst of new streams
            # that wait was the event loop's backlog, ms before a first token could go out.
            # The writer sends every queued create before any entry (`_write_forever`).
            created.add_done_callback(functools.partial(self._stored, owned))
        elif not await created:
            raise StreamExists(stream_id)
        self._owned[stream_id] = owned

    async def append(self, stream_id: str, payload: bytes) -> int:
        owned = self._owned.get(stream_id)
        if owned is None:
            raise await self._not_producing(stream_id)
        while self._tally.count >= self._high_water:  # it waits instead of being refused
            self._drained.clear()
            await self._drained.wait()
        return owned.mirror.append(payload)

    def append_nowait(self, stream_id: str, payload: bytes) -> int:
        """`append`, synchronously, for producers that push (relay/generation.py). It cannot
        wait for Redis: past twice `high_water` queued entries it refuses instead."""
        return self._producing(stream_id).mirror.append(payload)

    def appender(self, stream_id: str) -> Callable[[bytes], int]:
        """`append_nowait` for one stream: the mirror's append, all in C (`_Mirror`)."""
        return self._producing(stream_id).mirror.append

    def _stored(self, owned: _Owned, created: asyncio.Future[Any]) -> None:
        """A `fresh` create's answer: if Redis refused it, the producer's appends refuse."""
        if created.cancelled():
            return
        failure = created.exception()
        if failure is None and not created.result():
            failure = StreamExists(owned.stream_id)
        if failure is not None and owned.failure is None:
            owned.failure = failure  # its queued entries are refused too (no meta in Redis)

    def _producing(self, stream_id: str) -> _Owned:
        owned = self._owned.get(stream_id)
        if owned is None:
            raise StreamLogError(f"this instance does not produce stream {stream_id}")
        return owned

    def _pending(self, mirror: _Mirror) -> None:
        """A stream's first entry queued since the writer last took its entries (called by
        the mirror's append): a followed stream goes with the next flush, an unfollowed one
        waits in the lazy queue for its window."""
        owned = mirror.owner
        if owned.prompt:
            self._dirty[owned.stream_id] = owned
            self._work.set()
        elif owned.lazy_since is None:
            now = self._loop.time()
            owned.lazy_since = now
            self._lazy_queue.append((now, owned))
            if self._lazy is None:
                self._lazy = self._loop.call_at(now + self.unfollowed_flush_interval,
                                                self._lazy_due)  # fmt: skip

    def _lazy_due(self) -> None:
        self._lazy = None
        self._work.set()

    def _take_lazy(self, batch: dict[str, _Owned], now: float) -> None:
        """Add to `batch` the unfollowed streams whose window ends by `now` plus a slack,
        and time the next lazy flush for the first one left. The slack is a whole window
        (everything waiting goes) up to _LAZY_BATCH streams waiting, and shrinks with more,
        so that each call carries about that many."""
        queue, window = self._lazy_queue, self.unfollowed_flush_interval
        if not queue:
            return
        slack = window * min(1.0, _LAZY_BATCH / len(queue))
        cutoff = now + slack - window  # queued by then: its window ends within the slack
        while queue and (queue[0][0] <= cutoff or queue[0][1].lazy_since != queue[0][0]):
            since, owned = queue.popleft()
            if owned.lazy_since == since:  # else sent already, with a prompt batch
                batch[owned.stream_id] = owned
        if queue and self._lazy is None:
            self._lazy = self._loop.call_at(queue[0][0] + window, self._lazy_due)

    def _followed(self, owned: _Owned) -> None:
        """Another instance follows `owned`: its entries go out within flush_interval now."""
        if not owned.prompt:
            owned.prompt = True
            owned.lazy_since = None  # its record in the lazy queue is stale now
            if owned.mirror.pending:
                self._dirty[owned.stream_id] = owned
                self._work.set()

    async def _not_producing(self, stream_id: str) -> StreamLogError:
        info = await self.status(stream_id)
        if info is not None and not info.live:
            return StreamEnded(stream_id)
        return UnknownStream(f"{stream_id} is unknown or not produced by this instance")

    async def end(self, stream_id: str, ending: Ending, payload: bytes | None = None) -> bool:
        ending = Ending(ending)
        owned = self._owned.get(stream_id)
        if owned is not None and owned.end is not None:
            # An end is queued behind appends; going around the writer could overtake it.
            await asyncio.shield(owned.end[2])
            return False
        if owned is None or owned.ended:
            await self._ready()
            keys = _Keys(self.prefix, stream_id)
            result: int = await self._script("end", *self._end_args(keys, ending, payload))
        else:
            # Through the writer, so the end lands after every queued append.
            owned.ended = True
            wake_all(owned.cancel_waiters)
            done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            owned.end = (ending, payload, done)
            self._dirty[stream_id] = owned
            self._work.set()
            try:
                result = await done
            except BaseException:
                owned.mirror.finish(None)
                raise
            if owned.mirror.end is None:
                owned.mirror.finish(End(ending, payload) if result == 1 else None)
        if result < 0:
            raise UnknownStream(stream_id)
        return result == 1

    def _end_args(self, keys: _Keys, ending: Ending, payload: bytes | None,
                  *, if_lease_lapsed: bool = False) -> tuple[Any, ...]:  # fmt: skip
        return (
            3, keys.log, keys.meta, keys.lease, ending.value, payload or b"",
            int(payload is not None), self._retention_ms, int(if_lease_lapsed),
        )  # fmt: skip

    async def _truncate_if_lease_lapsed(self, keys: _Keys) -> None:
        args = self._end_args(keys, Ending.TRUNCATED, None, if_lease_lapsed=True)
        await self._script("end", *args)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            self._renew_due = True
            self._work.set()

    async def _write_forever(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await self._work.wait()
            # At most one flush per `flush_interval`: the appends of that interval share one
            # round trip. Followers on this instance are not delayed (they are pushed from the
            # producer's copy); followers elsewhere see entries up to that much later.
            wait = last + self.flush_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            last = loop.time()
            self._work.clear()
            # Every create queued before the batch is taken goes first: a `fresh` stream's
            # entries may be queued already, and must not reach Redis before its hash.
            while self._creating:
                creating, self._creating = self._creating, []
                await self._create(creating)
            batch, self._dirty = self._dirty, {}
            self._take_lazy(batch, loop.time())
            renew = [o for o in self._owned.values() if not o.ended] if self._renew_due else []
            self._renew_due = False
            if batch or renew:
                await self._write(list(batch.values()), renew)

    async def _create(self, creating: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        """One round trip for the queued creates. A pipeline of its own: `_pipeline` runs a
        whole batch again after a flushed script cache, which a create must not meet twice."""
        try:
            results: list[Any] = await self._pipeline([command for command, _ in creating])
        except Exception as exc:  # every create waiting must hear of it
            results = [exc] * len(creating)
        for (_, created), result in zip(creating, results, strict=True):
            if created.done():
                continue  # its caller was cancelled
            if isinstance(result, Exception):
                created.set_exception(result)
            else:
                created.set_result(result)

    async def _write(self, batch: list[_Owned], renew: list[_Owned]) -> None:
        """One round trip: queued appends, then ends, then lease renewals (in that order)."""
        commands: list[tuple[Any, ...]] = []
        tags: list[tuple[str, _Owned | None, asyncio.Future[int] | None]] = []  # per command
        appended: list[_Owned] = []
        keys: list[str] = []
        args: list[bytes | int | str] = [self.max_entries, self._live_ttl_ms, self.instance_id]
        written = 0  # payloads sent, taken off the tally once the round trip is done
        for owned in batch:
            mirror = owned.mirror
            payloads = mirror.pending
            owned.lazy_since = None
            if payloads:
                mirror.pending = []
                written += len(payloads)
                appended.append(owned)
                keys += (owned.keys.log, owned.keys.meta)
                args += (mirror.last_seq - len(payloads) + 1, len(payloads),
                         0 if owned.log_expires else 1, *payloads)  # fmt: skip
        if appended:
            commands.append(("EVALSHA", self._scripts["append"], len(keys), *keys, *args))
            tags.append(("add", None, None))
        for owned in batch:
            if owned.end is not None:  # queued once: append and end refuse after it
                ending, payload, done = owned.end
                args_ = self._end_args(owned.keys, ending, payload)
                commands.append(("EVALSHA", self._scripts["end"], *args_))
                tags.append(("end", owned, done))
        if renew:
            lease_keys = [key for o in renew for key in (o.keys.lease, o.keys.meta, o.keys.log)]
            commands.append(("EVALSHA", self._scripts["renew"], len(lease_keys), *lease_keys,
                             self.instance_id, self._lease_ms, self._live_ttl_ms))  # fmt: skip
            tags.append(("renew", None, None))
            commands.append(("PEXPIRE", self._wake_key, _WAKE_TTL_MS))
            tags.append(("", None, None))
        try:
            results = await self._pipeline(commands)
        except Exception as exc:  # whatever it is, callers waiting on an end must hear of it
            results = [exc] * len(commands)
        for (kind, tagged, end_done), result in zip(tags, results, strict=True):
            if kind == "add":
                stored = [result] * len(appended) if isinstance(result, Exception) else result
                for each, each_stored in zip(appended, stored, strict=True):
                    if isinstance(each_stored, Exception):
                        each.failure = each_stored
                    elif not each_stored:  # ended elsewhere (truncated) or expired
                        each.ended = True
                        self._forget(each)
                    elif each_stored == 2:
                        each.log_expires = True
            elif kind == "end" and tagged is not None and end_done is not None:
                if isinstance(result, Exception):
                    end_done.set_exception(StreamLogError(f"ending the stream failed: {result}"))
                else:
                    end_done.set_result(int(result))
                    if int(result) == 1 and tagged.end is not None:
                        # Its end is in Redis: local followers get it from the copy now.
                        tagged.mirror.finish(End(tagged.end[0], tagged.end[1]))
                self._forget(tagged)
            elif kind == "renew" and isinstance(result, list):
                for each, cancel, followed in zip(renew, result[::2], result[1::2], strict=True):
                    if followed:
                        self._followed(each)
                    if cancel:
                        self._cancelled(each)
        self._tally.count -= written
        if self._tally.count < self._high_water:
            self._drained.set()

    def _forget(self, owned: _Owned) -> None:
        if self._owned.get(owned.stream_id) is owned:
            del self._owned[owned.stream_id]
        if owned.mirror.end is None:
            owned.mirror.finish(None)
        wake_all(owned.cancel_waiters)

    # -- cancel ------------------------------------------------------------------------------

    def _cancelled(self, owned: _Owned) -> None:
        owned.cancel_requested = True
        wake_all(owned.cancel_waiters)

    async def request_cancel(self, stream_id: str) -> bool:
        keys = _Keys(self.prefix, stream_id)
        await self._ready()
        # Straight to the producing instance's reader, which wakes its wait_for_cancel; should
        # that be missed, the producer's next lease renewal reads the flag from the hash.
        return await self._tell_producer(keys, stream_id, "cancel", "c")

    async def _tell_producer(self, keys: _Keys, stream_id: str, flag: str, field: str) -> bool:
        """Record `flag` in a live stream's hash and tell its producer (`_TELL`, `_woken`)."""
        wake_prefix = f"{self.prefix}instance:"
        return bool(await self._script("tell", 1, keys.meta, wake_prefix, stream_id, flag, field))

    async def cancel_requested(self, stream_id: str) -> bool:
        keys = _Keys(self.prefix, stream_id)
        redis = await self._ready()
        return await redis.hget(keys.meta, "cancel") is not None

    def when_cancelled(
        self, stream_id: str, callback: Callable[[], object]
    ) -> Callable[[], object]:
        owned = self._owned.get(stream_id)
        if owned is None or owned.cancel_requested or owned.ended:
            return super().when_cancelled(stream_id, callback)  # it knows what to do
        return call_when_woken(owned.cancel_waiters, callback)

    async def wait_for_cancel(self, stream_id: str) -> bool:
        await self._ready()
        owned = self._owned.get(stream_id)
        if owned is None:
            info = await self.status(stream_id)
            if info is not None and not info.live:
                return await self.cancel_requested(stream_id)
            raise UnknownStream(f"{stream_id} is unknown or not produced by this instance")
        while not owned.cancel_requested and not owned.ended:
            await park(owned.cancel_waiters)
        return owned.cancel_requested

    # -- followers ---------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        wake_key, wake_id = self._wake_key.encode(), b"0-0"
        while not self._closed:
            streams: dict[Any, Any] = {wake_key: wake_id}
            for key, watch in self._watches.items():
                if watch.armed and not watch.ended:
                    streams[key] = b"0-%d" % watch.seen
            try:
                response: Any = await self._reader.xread(
                    streams, count=self._read_batch, block=_READER_BLOCK_MS
                )
            except RedisError:
                await asyncio.sleep(0.5)  # Redis away; followers' own checks notice it too
                continue
            for key, raw in response:
                if key == wake_key:
                    wake_id = raw[-1][0]
                    for _, fields in raw:
                        self._woken(fields)
                elif (woken := self._watches.get(key)) is not None:
                    for item in _decode(raw):
                        woken.push(item)
                    wake_all(woken.waiters)

    def _woken(self, fields: dict[bytes, bytes]) -> None:
        """A message on this instance's wake-up stream: a cancel (`c`) or a follower on
        another instance (`f`) for a stream produced here; the others only end the XREAD."""
        for field, act in ((b"c", self._cancelled), (b"f", self._followed)):
            stream_id = fields.get(field)
            if stream_id is not None and (owned := self._owned.get(stream_id.decode())):
                act(owned)

    async def follow(self, stream_id: str, after: int = 0) -> AsyncGenerator[LogItem, None]:
        if after < 0:
            raise ValueError(f"after must be >= 0, got {after}")
        owned = self._owned.get(stream_id)
        if owned is not None and not self._closed:
            async for item in self._follow_mirror(owned.mirror, after):
                yield item
                if isinstance(item, End):
                    return
                if isinstance(item, Entry):
                    after = item.seq
            # The end went elsewhere (or its write failed): continue from Redis.
        keys = _Keys(self.prefix, stream_id)
        redis = await self._ready()
        if not await redis.exists(keys.meta):
            raise UnknownStream(stream_id)
        log_key = keys.log.encode()
        watch = self._watches.get(log_key)
        first = watch is None
        if watch is None:
            watch = self._watches[log_key] = _Watch()
        watch.followers += 1
        pos, check = after, False
        try:
            if first:  # its producer, elsewhere, then sends its entries within flush_interval
                await self._tell_producer(keys, stream_id, "followed", "f")
            while True:
                items = None if check else watch.after(pos)
                if items is None:  # behind the shared buffer, or checking: read for ourselves
                    raw: Any = await redis.xread({log_key: b"0-%d" % pos}, count=self._read_batch)
                    items = _decode(raw[0][1]) if raw else []
                    check = False
                for item in items:
                    if isinstance(item, End):
                        yield item
                        return
                    if item.seq > pos + 1:
                        yield Gap(pos + 1, item.seq - 1)
                    yield item
                    pos = item.seq
                if not items:
                    check = not await self._wait(watch, pos)
                    if check:
                        await self._check_producer(redis, keys)
        except RedisError as exc:
            if self._closed:
                raise LogClosed("the stream log is closed") from exc
            raise
        finally:
            watch.followers -= 1
            if not watch.followers and self._watches.get(log_key) is watch:
                del self._watches[log_key]

    def tail(
        self, stream_id: str, after: int, on_item: Callable[[LogItem | Moved], None],
        on_entries: OnEntries | None = None,
    ) -> Callable[[], None] | None:
        # Pushed only on the producing instance, from its own copy; elsewhere: `follow`.
        if after < 0:
            raise ValueError(f"after must be >= 0, got {after}")
        owned = self._owned.get(stream_id)
        if owned is None or self._closed or owned.mirror.gone:
            return None
        return owned.mirror.tail(after, on_item, on_entries)

    async def _follow_mirror(
        self, mirror: _Mirror, after: int
    ) -> AsyncGenerator[LogItem, None]:
        """Entries after `after` from the producer's own copy, then its end; returns early
        (without an end) when the end must be read from Redis."""
        pos = after
        while True:
            if pos < mirror.first + len(mirror.entries) - 1:
                while pos < mirror.first + len(mirror.entries) - 1:
                    if pos + 1 < mirror.first:  # trimmed while this follower was away
                        yield Gap(pos + 1, mirror.first - 1)
                        pos = mirror.first - 1
                        continue
                    pos += 1
                    yield Entry(pos, mirror.entries[pos - mirror.first])
                continue
            if mirror.end is not None:
                yield mirror.end
                return
            if mirror.gone:
                return
            await park(mirror.waiters)

    async def _wait(self, watch: _Watch, pos: int) -> bool:
        """Wait for the shared reader to bring news; False after ``lease_ttl / 2`` without."""
        if not watch.armed:
            watch.armed, watch.base, watch.seen = True, pos, pos
            await self._poke_reader(b"watch")  # its XREAD does not include this stream yet
        try:
            async with asyncio.timeout(self.lease_ttl / 2):
                await park(watch.waiters)
        except TimeoutError:
            return False
        return True

    async def _check_producer(self, redis: Redis, keys: _Keys) -> None:
        """After a quiet spell: the stream must still exist, and its producer hold the lease."""
        pipe = redis.pipeline(transaction=False)
        pipe.hexists(keys.meta, "owner")
        pipe.hexists(keys.meta, "ending")
        pipe.exists(keys.lease)
        exists, ended, leased = await pipe.execute()
        if not exists:
            raise UnknownStream(f"stream {keys.log} expired while being followed")
        if not ended and not leased:  # the producer is gone: end it for every follower
            await self._truncate_if_lease_lapsed(keys)

    async def status(self, stream_id: str) -> StreamInfo | None:
        owned = self._owned.get(stream_id)
        if owned is not None and not owned.ended and not self._closed:
            # Produced here and live: this instance knows it best, without a round trip (a
            # GET /v1/streams/{id} asks before it follows). Redis may be up to a flush behind.
            mirror = owned.mirror
            kept_from = mirror.first if len(mirror.entries) else mirror.last_seq + 1
            return StreamInfo(stream_id, None, mirror.last_seq, kept_from, dict(owned.meta))
        keys = _Keys(self.prefix, stream_id)
        redis = await self._ready()
        pipe = redis.pipeline(transaction=False)
        pipe.hgetall(keys.meta)
        pipe.xrange(keys.log, "-", "+", count=1)
        pipe.xrevrange(keys.log, "+", "-", count=2)
        pipe.exists(keys.lease)
        meta, oldest, newest, leased = await pipe.execute()
        if not meta:
            return None
        if b"ending" not in meta and not leased:
            await self._truncate_if_lease_lapsed(keys)
            return await self.status(stream_id)
        data = [item for item in _decode(newest) if isinstance(item, Entry)]
        last_seq = data[0].seq if data else 0
        first = _decode(oldest)
        ending = meta.get(b"ending")
        return StreamInfo(
            stream_id=stream_id,
            ending=Ending(ending.decode()) if ending else None,
            last_seq=last_seq,
            first_seq=first[0].seq if first and isinstance(first[0], Entry) else last_seq + 1,
            meta={k[2:].decode(): v.decode() for k, v in meta.items() if k.startswith(b"m:")},
            end_payload=meta.get(b"end_payload"),
        )
