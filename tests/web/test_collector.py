"""The garbage collector under `sserelay serve` (web/collector.py): start-up frozen, the
young generation by count, the older one on a timer."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from sserelay.web import collector

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]


@contextlib.contextmanager
def _collections() -> Iterator[list[int]]:
    """The generation of every collection while inside, with automatic collection off (so
    only the code under test collects), and the test process's settings put back after."""
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    seen: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.disable()
    gc.callbacks.append(note)
    try:
        yield seen
    finally:
        gc.callbacks.remove(note)
        gc.unfreeze()
        gc.set_threshold(*threshold)
        if enabled:
            gc.enable()


def test_settling_freezes_start_up_and_leaves_the_older_generation_to_the_timer() -> None:
    """After start-up the collector no longer scans what start-up made, collects the young
    generation every 10,000 allocations, and never collects generation 1 by count."""
    with _collections():
        collector.settle()
        assert gc.get_freeze_count() > 0
        young, older, oldest = gc.get_threshold()
        assert young == collector.YOUNG_THRESHOLD == 10_000
        assert older >= 2**31 - 1
        assert oldest == 10


async def _ticks(young_collections: int, ticks: int) -> None:
    gc.collect(1)  # generation 1 starts empty of young collections
    for _ in range(young_collections):
        gc.collect(0)
    older = collector.OlderCollections(interval=0.01)
    older.start()
    try:
        await asyncio.sleep(0.01 * ticks + 0.005)
    finally:
        older.stop()


def test_the_timer_collects_generation_1_once_after_young_collections(run: Run[None]) -> None:
    """A young collection has promoted objects: the next tick collects generation 1, and
    the ticks after it, with nothing new promoted, do not."""
    with _collections() as seen:
        run(_ticks(young_collections=2, ticks=3))
        assert gc.get_count()[1] == 0
    assert seen[:3] == [1, 0, 0]  # the test's own set-up
    assert seen[3:] == [1]


def test_the_timer_leaves_generation_1_alone_when_no_young_collection_ran(
    run: Run[None],
) -> None:
    """No young collection since the last: the timer's ticks collect nothing."""
    with _collections() as seen:
        run(_ticks(young_collections=0, ticks=3))
    assert seen == [1]  # the test's own set-up only


def test_a_stopped_timer_collects_nothing(run: Run[None]) -> None:
    """`stop` (at shutdown) cancels the next tick."""

    async def stopped() -> None:
        gc.collect(0)
        older = collector.OlderCollections(interval=0.01)
        older.start()
        older.stop()
        await asyncio.sleep(0.05)

    with _collections() as seen:
        run(stopped())
    assert seen == [0]


def test_the_server_collects_the_older_generation_on_its_timer_while_it_serves(
    run: Run[None],
) -> None:
    """`sserelay serve`'s server settles the collector and starts the timer when it starts,
    and stops the timer when it shuts down (web/server.py)."""
    import uvicorn

    from sserelay.relay.generation import Generations
    from sserelay.streams import MemoryStreamLog
    from sserelay.web.server import GracefulServer
    from sserelay.web.shutdown import Shutdown

    async def app(scope: Any, receive: Any, send: Any) -> None:  # never called
        raise AssertionError("no request is made")

    async def serve_then_stop() -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
        config.load()
        server = GracefulServer(config, Shutdown(1.0, Generations(MemoryStreamLog())))
        server.older_collections = collector.OlderCollections(interval=0.01)
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.005)
        assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
        gc.collect(0)  # a young collection: the next tick collects generation 1
        await asyncio.sleep(0.05)
        server.should_exit = True
        await serving
        gc.collect(0)  # after shutdown the timer is stopped: no tick collects again
        await asyncio.sleep(0.05)

    with _collections() as seen:
        run(serve_then_stop())
    # settle()'s full collection, the test's young one and the timer's tick; then the young
    # one after shutdown, and nothing more.
    assert seen == [2, 0, 1, 0]
