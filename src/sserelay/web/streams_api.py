"""/v1/streams: start a generation, follow it from anywhere, stop it.

`POST /v1/streams` takes a chat request (as for /v1/chat/completions), starts the
generation and answers `{"id", "url", "ticket"}`. `GET /v1/streams/{id}` follows it as SSE
(with the key, or `?ticket=` from a browser), resuming
strictly after `Last-Event-ID` (or `?last_event_id=`); any number of clients may follow.
`DELETE /v1/streams/{id}` stops it: every follower gets finish_reason "cancelled", the usage
so far, and `[DONE]`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sserelay.gateway.auth import authenticate
from sserelay.gateway.errors import GatewayError
from sserelay.gateway.service import Gateway
from sserelay.keys.store import ClientKey
from sserelay.relay.chat_stream import CHAT, CHAT_COMPLETIONS, ChatPayloads
from sserelay.relay.generation import Generations, Outcome, Policy
from sserelay.settings import Settings
from sserelay.streams import parse_event_id, validate_stream_id
from sserelay.web.article import disconnect_policy, read_json_body_sized, validate_messages
from sserelay.web.errors import RequestError
from sserelay.web.follow import follow_response, requested_resume, resume_response

# Sampling parameters passed through as given; anything else in the body is refused, so a
# client cannot reach upstream features sserelay has not been told about.
_PASSED = frozenset(
    {
        "temperature",
        "top_p",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "max_tokens",
        "max_completion_tokens",
    }
)
_OURS = frozenset({"model", "messages", "stream", "disconnect"})
MAX_TOKENS_CAP = 4096


async def create_stream(request: Request) -> Response:
    """Start a generation through the gateway (its routes, aliases, key policy, retries and
    usage ledger) and answer where to follow it."""
    settings: Settings = request.app.state.settings
    generations: Generations = request.app.state.generations
    gateway: Gateway = request.app.state.gateway
    try:
        key = authenticate(request, gateway.keys)
    except GatewayError as exc:
        raise RequestError(exc.status, exc.message, exc.code) from None
    body, body_bytes = await read_json_body_sized(request, settings.max_body_bytes)
    if "messages" not in body:
        raise RequestError(400, 'The JSON body needs a "messages" list, as for chat completions.')
    messages = validate_messages(body["messages"], settings.max_prompt_chars)
    unknown = sorted(set(body) - _PASSED - _OURS)
    if unknown:
        raise RequestError(400, f"These parameters are not accepted: {', '.join(unknown)}.")
    request_body: dict[str, Any] = {k: body[k] for k in _PASSED if k in body}
    for cap in ("max_tokens", "max_completion_tokens"):
        if cap in request_body:
            if not isinstance(request_body[cap], int) or request_body[cap] < 1:
                raise RequestError(400, f'"{cap}" must be a positive integer.')
            request_body[cap] = min(request_body[cap], MAX_TOKENS_CAP)
    model = body.get("model") or settings.chat_model
    request_body.update(model=model, messages=messages, stream_options={"include_usage": True})
    policy = body.get("disconnect", disconnect_policy(request, "continue"))
    if policy not in ("cancel", "continue", "drain"):
        raise RequestError(400, '"disconnect" must be one of cancel, continue, drain.')
    try:
        opened = await gateway.open_stream(key, "chat", request_body, body_bytes)
    except GatewayError as exc:
        raise RequestError(exc.status, exc.message, exc.code) from None

    def produce(outcome: Outcome) -> ChatPayloads:
        return ChatPayloads(opened, outcome)

    stream_id = await generations.start(produce, CHAT, policy=policy)
    url = f"/v1/streams/{stream_id}"
    # A browser follows with `?ticket=` (EventSource sends no headers; web/tickets.py).
    ticket = request.app.state.tickets.issue(stream_id)
    return _json({"id": stream_id, "url": url, "ticket": ticket}, 201, headers={"Location": url})


async def follow_stream(request: Request) -> Response:
    generations: Generations = request.app.state.generations
    settings: Settings = request.app.state.settings
    stream_id = _stream_id(request)
    last_event_id = requested_resume(request)
    if last_event_id:
        parsed = parse_event_id(last_event_id)
        if parsed is not None and parsed[0] == stream_id:
            return await resume_response(generations, last_event_id, settings.heartbeat)
    # A generation running here has its stream in the log: no need to ask the log (for
    # Redis, a round trip).
    if not generations.producing(stream_id) and await generations.log.status(stream_id) is None:
        raise RequestError(
            404, f"There is no stream {stream_id!r} (or it has expired).", code="stream_not_found"
        )
    return follow_response(generations, stream_id, 0, settings.heartbeat)


async def stop_stream(request: Request) -> Response:
    generations: Generations = request.app.state.generations
    stream_id = _stream_id(request)
    info = await generations.log.status(stream_id)
    if info is None:
        raise RequestError(
            404, f"There is no stream {stream_id!r} (or it has expired).", code="stream_not_found"
        )
    if not info.live:
        return _json({"id": stream_id, "status": "ended", "ending": str(info.ending)})
    await generations.log.request_cancel(stream_id)
    return _json({"id": stream_id, "status": "cancelling"}, 202)


def _json(content: dict[str, Any], status: int = 200,
          headers: dict[str, str] | None = None) -> Response:
    # orjson, as the gateway's JSON answers: the same compact bytes as Starlette's
    # JSONResponse in 4.6 µs instead of 10-13 (its stdlib encoder).
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


def _stream_id(request: Request) -> str:
    raw = str(request.path_params["stream_id"])
    try:
        return validate_stream_id(raw)
    except ValueError:
        raise RequestError(404, "That is not a stream id.", code="stream_not_found") from None


async def resumable_chat_completion(
    request: Request, key: ClientKey | None, body: dict[str, Any], body_bytes: int
) -> Response:
    """A streamed /v1/chat/completions answer through the stream log: the same bytes as the
    direct relay, each event with an `id: <stream>:<seq>` and the stream named in the
    `X-Sserelay-Stream` header, so a client resumes it with `GET /v1/streams/{id}` and
    `Last-Event-ID`. A client that leaves is treated as the gateway's `abandoned_streams`
    says: `drain` (the default) finishes the answer, for its usage and for a resume."""
    generations: Generations = request.app.state.generations
    gateway: Gateway = request.app.state.gateway
    options = body.get("stream_options")
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    opened = await gateway.open_stream(key, "chat", body, body_bytes, strip_usage=not wants_usage)

    def produce(outcome: Outcome) -> ChatPayloads:
        return ChatPayloads(opened, outcome)

    policy: Policy = "cancel" if gateway.config.abandoned == "cancel" else "drain"
    stream_id = await generations.start(produce, CHAT_COMPLETIONS, policy=policy,
                                        wait_stored=False)  # fmt: skip
    return follow_response(generations, stream_id, 0)
