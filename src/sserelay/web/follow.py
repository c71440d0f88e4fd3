"""Following a stream from the log: the response every streaming endpoint sends.

The SSE id of each event is added here, at follow time (`<stream>:<seq>`), so the log holds
payloads only and a resumed follower gets exactly the bytes the first one got.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sserelay.codec import encode_event
from sserelay.observability import hooks
from sserelay.relay.article_format import ARTICLE
from sserelay.relay.chat_stream import CHAT, CHAT_COMPLETIONS
from sserelay.relay.generation import ENDED_IN_LOG, Generations
from sserelay.speedups import EntryTail
from sserelay.streams import End, Entry, Gap, LogItem, Moved, parse_event_id
from sserelay.web.event_stream import Channel, EventStreamResponse
from sserelay.web.query import query_params

_FORMATS = {fmt.name: fmt for fmt in (ARTICLE, CHAT, CHAT_COMPLETIONS)}


def requested_resume(request: Request) -> str | None:
    """The id to resume after: the Last-Event-ID header, else ?last_event_id= (EventSource
    cannot set headers on its first request, so hubs accept the parameter too)."""
    # Raw headers, not `request.headers.get`: asked on every streaming request, and
    # Starlette's lookup of an absent header raises and catches a KeyError.
    header = ""
    for name, value in request.scope["headers"]:
        if name == b"last-event-id":
            header = value.decode("latin-1")
            break
    if header:
        return header
    if b"last_event_id" not in request.scope.get("query_string", b""):
        return None
    return query_params(request).get("last_event_id") or None


def follow_response(
    generations: Generations, stream_id: str, after: int, heartbeat: float | None = None
) -> Response:
    generations.add_follower(stream_id)
    if not generations.producing(stream_id):
        hooks.replayed()

    async def done() -> None:
        generations.remove_follower(stream_id)

    return EventStreamResponse(
        _payloads(generations, stream_id, after),
        push=functools.partial(_push, generations, stream_id, after),
        headers={"x-sserelay-stream": stream_id},
        on_close=done,
        heartbeat=heartbeat or generations.heartbeat,
        slow_client_timeout=generations.slow_client_timeout,
    )


async def resume_response(
    generations: Generations, last_event_id: str, heartbeat: float | None = None
) -> Response:
    """Continue a stream strictly after `last_event_id`; 204 when there is nothing to resume.

    204 is the status that makes EventSource stop reconnecting (WHATWG HTML, "Server-sent
    events"): for a stream that ended and was fully read, one that expired, or an id that
    is not ours. Never a new generation.
    """
    parsed = parse_event_id(last_event_id)
    if parsed is None:
        hooks.resumed("unknown")
        return Response(status_code=204)
    stream_id, after = parsed
    info = await generations.log.status(stream_id)
    if info is None or (not info.live and after >= info.last_seq):
        hooks.resumed("nothing_left")
        return Response(status_code=204)
    hooks.resumed("resumed")
    return follow_response(generations, stream_id, after, heartbeat)


async def _payloads(generations: Generations, stream_id: str, after: int) -> AsyncIterator[bytes]:
    prefix = b"id: " + stream_id.encode() + b":"
    async for item in generations.log.follow(stream_id, after):
        if type(item) is Entry:
            yield b"%s%d\n%s" % (prefix, item.seq, item.payload)
        elif type(item) is Gap:
            yield _gap_event(item)
        elif isinstance(item, End):
            for payload in await _ending(generations, stream_id, item):
                yield payload
            return


async def _push(generations: Generations, stream_id: str, after: int, channel: Channel) -> None:
    """`_payloads`, pushed: each entry is written to the client in the call that appends it
    to the log (`StreamLog.tail`), with no task switch per event. A client whose socket
    stops taking writes is unsubscribed, waits for its socket to drain and is caught up
    from the log: the producer never waits for it. Logs that cannot push are followed as
    in `_payloads`."""
    log = generations.log
    loop = asyncio.get_running_loop()
    tail = _Tail(stream_id, after, channel)
    while True:
        tail.stopped = loop.create_future()
        stop = log.tail(stream_id, tail.pos, tail.on_item, tail.on_entries)
        if stop is None:
            async for payload in _payloads(generations, stream_id, tail.pos):
                if not channel.write(payload):
                    if channel.gone:
                        return
                    await channel.drain()
            return
        try:
            end = await tail.stopped
        finally:
            stop()
        if end is not None:
            for payload in await _ending(generations, stream_id, end):
                channel.write(payload)
            return
        if channel.gone:
            return
        await channel.drain()


class _Tail(EntryTail):
    """One pushed follower's position (`pos`), and what it does with each log item
    (`on_item`): an entry, the usual item, is written by EntryTail in one C call, its id
    line and payload as one HTTP chunk, and `stopped` resolved with None when the client
    is not reading (it catches up from the log later); the rest comes here."""

    __slots__ = ("_channel",)
    stopped: asyncio.Future[End | None] | None

    def __init__(self, stream_id: str, after: int, channel: Channel) -> None:
        super().__init__(b"id: " + stream_id.encode() + b":", channel.write_chunk, Entry, after)
        self._channel = channel

    def on_entries(self, first: int, payloads: list[bytes]) -> None:
        """The catch-up (entries made before this client came, or while it was not
        reading) as one HTTP chunk: one write, not one per entry."""
        prefix = self.prefix
        self.pos = first + len(payloads) - 1
        events = b"".join([b"%s%d\n%s" % (prefix, seq, payload)
                           for seq, payload in enumerate(payloads, first)])  # fmt: skip
        if not self._channel.write(events):
            stopped = self.stopped
            assert stopped is not None  # set before every tail
            stopped.set_result(None)  # the client is not reading: catch up after a drain

    def on_other(self, item: LogItem | Moved) -> None:
        stopped = self.stopped
        assert stopped is not None  # EntryTail calls this only while subscribed
        if type(item) is Gap:
            self.pos = item.last
            self._channel.write(_gap_event(item))
        elif type(item) is Moved:
            stopped.set_result(None)  # the rest comes from `follow`
        else:
            stopped.set_result(item)  # type: ignore[arg-type]


def _gap_event(gap: Gap) -> bytes:
    # Loss detection: entries this client asked for were trimmed; say so, never hand over a
    # silent gap.
    lost = {
        "first": gap.first,
        "last": gap.last,
        "message": f"Events {gap.first} to {gap.last} of this stream are no longer kept.",
    }
    return encode_event(orjson.dumps({"gap": lost}).decode(), event="gap")


async def _ending(generations: Generations, stream_id: str, end: End) -> list[bytes]:
    if end.payload == ENDED_IN_LOG:
        return []
    # The producer never wrote the ending (its instance died and the lease lapsed): end the
    # stream in its own format, as `truncated`.
    info = await generations.log.status(stream_id)
    fmt = _FORMATS.get(info.meta.get("format", "")) if info else None
    return list(fmt.lost()) if fmt else []
