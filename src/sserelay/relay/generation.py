"""Generations: one upstream request per stream, written into the stream log, followed by
any number of clients.

The generation runs as its own task, so what happens to it when readers leave is a policy,
not an accident of the HTTP server (issue "Streams that survive the network"):

- ``cancel``: stop the upstream as soon as nobody on this instance follows;
- ``continue``: finish and keep the stream for resume (the default for /v1/streams);
- ``drain``: finish, but only so usage is recorded; same as ``continue`` for the log.

Every payload a client will see, including the typed ending and the end marker, is a log
entry, so a resumed or late follower gets byte-for-byte what the first one got.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Literal

from sserelay.limits import claim_permit, record_completion_tokens
from sserelay.observability import hooks
from sserelay.observability.context import StreamMarks, clock
from sserelay.relay.stream_format import Outcome, Pushed, StreamFormat
from sserelay.speedups import CountedAppend
from sserelay.streams import Ending, StreamLog, StreamLogError, new_stream_id

__all__ = ["ENDED_IN_LOG", "POLICIES", "Generations", "Outcome", "Policy", "Producer"]

Policy = Literal["cancel", "continue", "drain"]
POLICIES: tuple[Policy, ...] = ("cancel", "continue", "drain")

log = logging.getLogger("sserelay.generation")


# Given the Outcome to fill in, yields the stream's payloads (SSE event bytes without id),
# ending and end marker included; a `Pushed` producer can also push them.
Producer = Callable[[Outcome], AsyncGenerator[bytes, None] | Pushed]
# The log's end payload when the ending payloads were written into the log by the producer;
# an end without it (a lapsed lease) means the follower must write the ending itself.
ENDED_IN_LOG = b"ended-in-log"


@dataclass(slots=True)
class _Running:
    task: asyncio.Task[None]
    policy: Policy
    followers: int = 0
    outcome: Outcome = field(default_factory=Outcome)


class Generations:
    """Starts generations into `log` and tracks this instance's followers of them."""

    def __init__(
        self, log: StreamLog, *, heartbeat: float = 15.0, slow_client_timeout: float = 30.0
    ) -> None:
        self.log = log
        # How followers' connections are kept: comments when idle, and dropping a client
        # that stopped reading (it can resume from the log).
        self.heartbeat = heartbeat
        self.slow_client_timeout = slow_client_timeout
        self._running: dict[str, _Running] = {}
        # Shutdown (web/shutdown.py): followers are cut so that they resume elsewhere, which
        # must not cancel their generations; those still running at the end are truncated.
        self._keep_without_followers = False
        self._truncating = False

    async def start(
        self,
        produce: Producer,
        fmt: StreamFormat,
        *,
        policy: Policy,
        wait_stored: bool = True,
    ) -> str:
        """Start a generation into a new stream and return its id. `wait_stored=False`: it
        may start before the log has stored the stream (with Redis, a round trip that under
        a burst of new streams is the event loop's backlog), for a response that carries
        the events itself. /v1/streams hands out the id to follow from anywhere: it waits."""
        stream_id = new_stream_id()
        await self.log.create(stream_id, meta={"format": fmt.name}, fresh=not wait_stored)
        outcome = Outcome()
        # The request's admission (sserelay.limits) lasts as long as the generation, which
        # may outlive the response (`continue`, /v1/streams).
        permit = claim_permit()
        task = asyncio.get_running_loop().create_task(
            self._run(stream_id, produce, fmt, outcome)
        )
        if permit is not None:
            task.add_done_callback(lambda _: permit.release())
        self._running[stream_id] = _Running(task, policy, outcome=outcome)
        hooks.generation_started(fmt.name)
        return stream_id

    def producing(self, stream_id: str) -> bool:
        """Whether this instance generates `stream_id` now."""
        return stream_id in self._running

    def add_follower(self, stream_id: str) -> None:
        """A client on this instance reads `stream_id` (pair with `remove_follower`)."""
        running = self._running.get(stream_id)
        if running is not None:
            running.followers += 1
            running.outcome.readers_left = False

    def remove_follower(self, stream_id: str) -> None:
        running = self._running.get(stream_id)
        if running is not None:
            running.followers -= 1
            if running.followers <= 0:
                running.outcome.readers_left = True
            if (
                running.followers <= 0
                and running.policy == "cancel"
                and not self._keep_without_followers
            ):
                running.task.cancel()

    def followed(self) -> int:
        """How many clients on this instance follow generations still running here."""
        return sum(r.followers for r in self._running.values())

    def keep_without_followers(self) -> None:
        """From now on, followers leaving never cancel a generation (shutdown cuts them)."""
        self._keep_without_followers = True

    async def wait_finished(self, timeout: float) -> None:
        """Wait until no generation runs, or `timeout` seconds."""
        tasks = [r.task for r in self._running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def end_truncated(self) -> None:
        """End every running generation with its format's typed `truncated` ending, as if
        this instance had died: followers elsewhere read it, and nobody reads "cancelled"."""
        self._truncating = True
        await self.aclose()

    async def aclose(self) -> None:
        tasks = [r.task for r in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self,
        stream_id: str,
        produce: Producer,
        fmt: StreamFormat,
        outcome: Outcome,
    ) -> None:
        append = self.log.append
        me = asyncio.current_task()
        assert me is not None
        stop_waiting = self.log.when_cancelled(stream_id, me.cancel)
        payloads = produce(outcome)
        # Counted in locals for /metrics and the log; reported once, at the end (StreamMarks).
        marks = StreamMarks()
        stamps, chunks, size = marks.marks, 0, 0
        # A pushing producer's synchronous append for this stream: the memory log's own
        # (`appender`, no Python frame per payload), else `append_nowait`'s.
        appender = getattr(self.log, "appender", None)
        append_nowait = getattr(self.log, "append_nowait", None)
        append_now: Callable[[bytes], int] | None = None
        if appender is not None:
            append_now = appender(stream_id)
        elif append_nowait is not None:
            append_now = functools.partial(append_nowait, stream_id)
        # The producer's `emit`, counted as the loop below counts (CountedAppend, one C
        # call); a refused append ends the stream.
        emit = None if append_now is None else CountedAppend(
            append_now, StreamLogError, clock, stamps)

        try:
            if isinstance(payloads, Pushed) and emit is not None:
                # Each payload goes into the log, and to its pushed followers, in the call
                # that read it from the upstream: no task switch per chunk.
                try:
                    await payloads.run(emit)
                finally:
                    chunks, size = emit.chunks, emit.size
                if emit.refused is not None:
                    raise emit.refused
            else:
                async for payload in payloads:
                    await append(stream_id, payload)
                    chunks += 1
                    size += len(payload)
                    if chunks & 7 < 2:
                        stamps.append(clock())
        except asyncio.CancelledError:
            if self._truncating:
                outcome.ending = Ending.TRUNCATED
                ending = fmt.lost()
            else:
                # Stopped on purpose: DELETE, or the last follower left under ``cancel``.
                outcome.ending = Ending.CANCELLED
                ending = fmt.stopped(outcome)
            with contextlib.suppress(StreamLogError):
                for payload in ending:
                    await append(stream_id, payload)
        except StreamLogError:
            log.warning("stream %s: the log refused an append; ending it", stream_id)
            outcome.ending = Ending.TRUNCATED
        finally:
            await payloads.aclose()
            stop_waiting()
            self._running.pop(stream_id, None)
            with contextlib.suppress(StreamLogError):
                await self.log.end(stream_id, outcome.ending, ENDED_IN_LOG)
            # Chunks relayed, as the completion tokens, unless the usage was reported already.
            record_completion_tokens(outcome.completion_chunks)
            marks.chunks, marks.size = chunks, size
            # For the logs and metrics, a complete answer nobody was reading any more is the
            # client's aborted request (it was drained, or kept for a resume).
            reported = outcome.ending
            if outcome.readers_left and reported is Ending.DONE:
                reported = Ending.ABORTED
            hooks.generation_ended(stream_id, fmt.name, reported, marks,
                                   outcome.completion_chunks)
