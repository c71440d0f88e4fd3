"""Counters in Redis, shared by every sserelay instance using one Redis, so a key's limits
hold however its requests are spread over instances.

Every operation is one Lua script, so a check and its increment are atomic across instances,
and the clock is Redis' own (`TIME`), so instances with skewed clocks agree on the windows.
Layout (``prefix`` defaults to ``sserelay:limits:``): ``{prefix}w:{name}:{index}`` the count
of one fixed window (expires after two windows), ``{prefix}s:{name}`` a sorted set of slot
holders scored by their lease's expiry. Held slots are renewed every ``lease / 3`` by one
script call for all of them; the slots of an instance that died lapse after ``lease``.
Keys are built inside the scripts, which rules out Redis Cluster (as for the stream log).

If Redis cannot be reached, limits are not enforced (a warning is logged): refusing every
request because the counters are away would turn a Redis hiccup into an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .counters import NEVER, Counters, Take

__all__ = ["RedisCounters"]

log = logging.getLogger("sserelay.limits")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS: window base names. ARGV: window ms, then amount and limit per window.
# Returns the wait per window in whole ms (0: room now, -1: never); the arithmetic is
# counters.wait_for_room's. Lua numbers become integers in the reply, hence whole ms.
_TAKE = _NOW + """
local w = tonumber(ARGV[1])
local index = math.floor(now / w)
local f = (now - index * w) / w
local waits, blocked = {}, false
for i, base in ipairs(KEYS) do
  local amount, limit = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local curr = tonumber(redis.call('GET', base .. ':' .. index) or '0')
  local prev = tonumber(redis.call('GET', base .. ':' .. (index - 1)) or '0')
  local room, wait = limit - amount, 0
  if room < 0 then wait = -1
  elseif prev * (1 - f) + curr > room then
    if curr <= room then wait = (1 - (room - curr) / prev) - f
    else wait = (1 - f) + (1 - room / curr) end
    wait = math.max(1, math.ceil(wait * w))
  end
  waits[i] = wait
  if wait ~= 0 then blocked = true end
end
if not blocked then
  for i, base in ipairs(KEYS) do
    local key = base .. ':' .. index
    redis.call('INCRBY', key, ARGV[2 * i])
    redis.call('PEXPIRE', key, 2 * w + 1000)
  end
end
return waits
"""
# KEYS: window base name. ARGV: window ms, amount.
_ADD = _NOW + """
local w = tonumber(ARGV[1])
local key = KEYS[1] .. ':' .. math.floor(now / w)
redis.call('INCRBY', key, ARGV[2])
redis.call('PEXPIRE', key, 2 * w + 1000)
return 1
"""
# KEYS: slot set. ARGV: limit, holder, lease ms. Returns 1 if the holder has a slot.
_ACQUIRE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# KEYS: slot sets. ARGV: lease ms, then one holder per set. Only slots still held are renewed.
_RENEW = _NOW + """
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if redis.call('ZADD', key, 'XX', 'CH', now + lease, ARGV[i + 1]) == 1 then
    redis.call('PEXPIRE', key, lease)
  end
end
return 1
"""

_WARN_EVERY = 10.0


class RedisCounters(Counters):
    def __init__(self, url: str, *, prefix: str = "sserelay:limits:", lease: float = 30.0) -> None:
        self._redis = Redis.from_url(url)
        self._prefix = prefix
        self._lease_ms = int(lease * 1000)
        self._take = self._redis.register_script(_TAKE)
        self._add = self._redis.register_script(_ADD)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._held: dict[tuple[str, str], None] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._warned_at = -_WARN_EVERY

    def _unavailable(self, exc: RedisError) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning("limit counters unavailable (%s); not enforcing limits", type(exc).__name__)

    async def take(self, takes: Sequence[Take], window: float) -> list[float]:
        keys = [f"{self._prefix}w:{t.name}" for t in takes]
        args: list[int] = [int(window * 1000)]
        for t in takes:
            args += [t.amount, t.limit]
        try:
            reply = await self._take(keys=keys, args=args)
        except RedisError as exc:
            self._unavailable(exc)
            return [0.0] * len(takes)
        return [NEVER if ms < 0 else ms / 1000 for ms in map(int, reply)]

    async def add(self, name: str, amount: int, window: float) -> None:
        try:
            await self._add(keys=[f"{self._prefix}w:{name}"], args=[int(window * 1000), amount])
        except RedisError as exc:
            self._unavailable(exc)

    async def acquire(self, name: str, limit: int, holder: str) -> bool:
        try:
            taken = await self._acquire(
                keys=[f"{self._prefix}s:{name}"], args=[limit, holder, self._lease_ms]
            )
        except RedisError as exc:
            self._unavailable(exc)
            return True
        if not taken:
            return False
        self._held[name, holder] = None
        if self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())
        return True

    async def release(self, name: str, holder: str) -> None:
        self._held.pop((name, holder), None)
        try:
            await self._redis.zrem(f"{self._prefix}s:{name}", holder)
        except RedisError as exc:
            self._unavailable(exc)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            held = list(self._held)
            if not held:
                continue
            keys = [f"{self._prefix}s:{name}" for name, _ in held]
            try:
                await self._renew(keys=keys, args=[self._lease_ms, *(h for _, h in held)])
            except RedisError as exc:
                self._unavailable(exc)

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        for name, holder in list(self._held):
            await self.release(name, holder)
        await self._redis.aclose()

