"""Following a stream from the log: the response every streaming endpoint sends.

The SSE id of each event is added here, at follow time (`<stream>:<seq>`), so the log holds
payloads only and a resumed follower gets exactly the bytes the first one got.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sserelay.codec import encode_event
from sserelay.observability import hooks
from sserelay.relay.article_format import ARTICLE
from sserelay.relay.chat_stream import CHAT, CHAT_COMPLETIONS
from sserelay.relay.generation import ENDED_IN_LOG, Generations
from sserelay.streams import End, Entry, Gap, parse_event_id
from sserelay.web.event_stream import EventStreamResponse

_FORMATS = {fmt.name: fmt for fmt in (ARTICLE, CHAT, CHAT_COMPLETIONS)}


def requested_resume(request: Request) -> str | None:
    """The id to resume after: the Last-Event-ID header, else ?last_event_id= (EventSource
    cannot set headers on its first request, so hubs accept the parameter too)."""
    return request.headers.get("last-event-id") or request.query_params.get("last_event_id")


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
            # Loss detection: entries this client asked for were trimmed; say so, never
            # hand over a silent gap.
            lost = {
                "first": item.first,
                "last": item.last,
                "message": f"Events {item.first} to {item.last} of this stream are no longer kept.",
            }
            yield encode_event(orjson.dumps({"gap": lost}).decode(), event="gap")
        elif isinstance(item, End):
            if item.payload != ENDED_IN_LOG:
                # The producer never wrote the ending (its instance died and the lease
                # lapsed): end the stream in its own format, as `truncated`.
                info = await generations.log.status(stream_id)
                fmt = _FORMATS.get(info.meta.get("format", "")) if info else None
                for payload in fmt.lost() if fmt else ():
                    yield payload
            return
