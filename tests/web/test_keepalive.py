"""Keepalive decisions and the shared sweeper (web/keepalive.py)."""

from __future__ import annotations

import asyncio

from sserelay.web.keepalive import Keepalive, Sweeper


def test_a_heartbeat_is_due_only_after_a_whole_quiet_interval() -> None:
    """No ping while writes happen; one after `heartbeat` seconds without any."""
    keepalive = Keepalive(10.0, 30.0, now=0.0)
    assert keepalive.check(5.0, sent=1, blocked=False) is None  # a write: quiet from 5
    assert keepalive.check(14.0, sent=1, blocked=False) is None
    assert keepalive.check(15.0, sent=1, blocked=False) == "ping"
    keepalive.pinged(15.0, sent=2)
    assert keepalive.check(24.0, sent=2, blocked=False) is None


def test_a_client_blocked_for_the_slow_timeout_is_dropped_and_never_pinged() -> None:
    """A write waiting for the client is no reason to ping; past `slow` it is a drop."""
    keepalive = Keepalive(10.0, 30.0, now=0.0)
    assert keepalive.check(20.0, sent=0, blocked=True) is None
    assert keepalive.check(30.0, sent=0, blocked=True) == "drop"


def test_the_tick_is_half_the_shortest_limit() -> None:
    assert Keepalive(10.0, 30.0, now=0.0).tick == 5.0
    assert Keepalive(None, 4.0, now=0.0).tick == 2.0


def test_the_sweeper_checks_each_registered_response_until_it_leaves() -> None:
    """Registered checks are called periodically; a removed one is not called again, and
    the sweeper's task ends when none is left."""

    async def main() -> tuple[int, int, bool]:
        sweeper = Sweeper(asyncio.get_running_loop())
        calls = {"a": 0, "b": 0}
        remove_a = sweeper.add(lambda now: calls.__setitem__("a", calls["a"] + 1), 0.01)
        remove_b = sweeper.add(lambda now: calls.__setitem__("b", calls["b"] + 1), 0.05)
        await asyncio.sleep(0.1)
        remove_a()
        seen_a = calls["a"]
        await asyncio.sleep(0.05)
        remove_b()
        task = sweeper._task
        return calls["a"] - seen_a, calls["b"], task is None

    after_removal, b_calls, stopped = asyncio.run(main())
    assert after_removal == 0
    assert b_calls >= 2  # checked at the shorter tick of the two while both were there
    assert stopped
