"""New generations start one per loop iteration, behind everything else (web/start_gate.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from sserelay.web.start_gate import StartGate
from tests.web.conftest import requests

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def test_a_start_with_nothing_waiting_runs_at_once(run: Run) -> None:
    async def main() -> list[str]:
        gate, seen = StartGate(), []

        async def start() -> None:
            await gate.turn()
            seen.append("start")

        task = asyncio.ensure_future(start())
        await asyncio.sleep(0)  # the task's first step: through the gate in that same step
        seen.append("after one step")
        await task
        return seen

    assert run(main()) == ["start", "after one step"]


def test_starts_that_arrive_together_run_in_order_and_a_follow_goes_between_them(
    run: Run,
) -> None:
    """Three starts and then a follow (no gate) arrive in one iteration: the first start
    runs, the follow runs in that same iteration, the other starts in the next ones."""

    async def main() -> list[str]:
        gate, seen = StartGate(), []

        async def start(name: str) -> None:
            await gate.turn()
            seen.append(name)

        async def follow() -> None:
            seen.append("follow")

        tasks = [asyncio.ensure_future(start(name)) for name in ("a", "b", "c")]
        tasks.append(asyncio.ensure_future(follow()))
        await asyncio.gather(*tasks)
        return seen

    assert run(main()) == ["a", "follow", "b", "c"]


def test_starts_that_wait_run_one_per_loop_iteration(run: Run) -> None:
    """Between two queued starts, a callback scheduled when the first ran gets to run."""

    async def main() -> list[str]:
        gate, seen = StartGate(), []
        loop = asyncio.get_running_loop()

        async def start(name: str) -> None:
            await gate.turn()
            seen.append(name)
            loop.call_soon(seen.append, f"after {name}")

        await asyncio.gather(*(start(name) for name in ("a", "b", "c")))
        await asyncio.sleep(0)
        return seen

    assert run(main()) == ["a", "after a", "b", "after b", "c", "after c"]


def test_a_start_cancelled_while_waiting_gives_its_turn_to_the_next(run: Run) -> None:
    async def main() -> list[str]:
        gate, seen = StartGate(), []

        async def start(name: str) -> None:
            await gate.turn()
            seen.append(name)

        first = asyncio.ensure_future(start("a"))
        waiting = asyncio.ensure_future(start("b"))
        last = asyncio.ensure_future(start("c"))
        await asyncio.sleep(0)  # all three at the gate: a through, b and c waiting
        waiting.cancel()
        await asyncio.gather(first, last)
        assert waiting.cancelled()
        return seen

    assert run(main()) == ["a", "c"]


class _CountingGate(StartGate):
    def __init__(self) -> None:
        super().__init__()
        self.turns = 0

    async def turn(self) -> None:
        self.turns += 1
        await super().turn()


def test_the_guard_takes_a_turn_for_a_start_and_none_for_a_follow(app: Any) -> None:
    """Requests that start a generation go through the app's gate (before any other
    check: a body it refuses still waited its turn); following a stream never does."""
    gate = app.state.start_gate = _CountingGate()
    statuses = [response.status_code for response in requests(
        app,
        ("POST", "/v1/streams", {"content": b"not json"}),
        ("GET", "/v1/streams/AAAAAAAAAAAAAAAA", {}),
        ("POST", "/v1/chat/completions", {"json": {"model": "x"}}),
    )]  # fmt: skip
    assert statuses[1] == 404 and all(400 <= status < 500 for status in statuses)
    assert gate.turns == 2
