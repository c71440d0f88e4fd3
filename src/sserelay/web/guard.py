"""What every route that starts or follows a stream checks before its endpoint runs.

In order: a request that starts a generation waits for its turn (`start_gate`: one start
per loop iteration, behind the streams already flowing); the instance is not shutting down
(503); who is asking (a client key, a ticket for one stream, or this machine while no keys
exist: 401 otherwise); the request body, read here and only up to its limit (413 without
reading further, 408 if it trickles); the conversation's size (400 / 413); then admission
(`sserelay.limits`: 429 / 503 with Retry-After). The endpoint then gets the body back as if
it had not been read, and runs holding the admission's permit (`limits.holding`), which is
released when the response ends, or when the generation ends if the generation claimed it.

A route's rules are picked by its path (`RULES`); `guard_routes` wraps the app's routes in
one go, so no endpoint repeats these checks. Only `receive` is wrapped, never `send`: the
checks cost nothing per streamed chunk.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sserelay.deadline import deadline
from sserelay.error_shapes import Dialect, GatewayError, anthropic_error, openai_error
from sserelay.gateway.auth import authenticate
from sserelay.limits import Limiter, LimitExceeded, check_prompt_size, estimate_tokens, holding
from sserelay.settings import Settings
from sserelay.web.event_stream import CUT_KEY
from sserelay.web.follow import requested_resume
from sserelay.web.query import query_params
from sserelay.web.shutdown import Shutdown
from sserelay.web.tickets import TicketSigner

__all__ = ["RULES", "Guard", "RouteRules", "guard_routes"]

BodyKind = Literal["article", "gateway"]
# Where the guard leaves a JSON object body it has read and parsed, with its size in bytes,
# so the endpoint does not parse it again (web/article.py, `read_json_body`).
PARSED_BODY_KEY = "sserelay.parsed_body"


@dataclass(frozen=True, slots=True)
class RouteRules:
    dialect: Dialect = "openai"
    body: BodyKind | None = None
    """Which body and prompt limits apply; None: the route takes no body."""
    generates: bool = False
    """Starts a generation: admitted through the limiter (not when it resumes one)."""
    follows: bool = False
    """Its response follows the stream log: cut at shutdown so the client resumes elsewhere."""
    tickets: bool = False
    """Accepts `?ticket=` for the stream in its path instead of a key."""


_ARTICLE_GET = RouteRules(generates=True, follows=True)
RULES: dict[str, RouteRules] = {
    "/completion": _ARTICLE_GET,
    "/completionChat": _ARTICLE_GET,
    "/completions/chat": RouteRules(body="article", generates=True, follows=True),
    "/v1/streams": RouteRules(body="article", generates=True),
    "/v1/streams/{stream_id}": RouteRules(follows=True, tickets=True),
    "/v1/chat/completions": RouteRules(body="gateway", generates=True),
    "/v1/completions": RouteRules(body="gateway", generates=True),
    "/v1/responses": RouteRules(body="gateway", generates=True),
    "/v1/messages": RouteRules(dialect="anthropic", body="gateway", generates=True),
}


def guard_routes(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """`routes` with the endpoint of each path in `RULES` behind a `Guard`."""
    guarded: list[BaseRoute] = []
    for route in routes:
        rules = RULES.get(route.path) if isinstance(route, Route) else None
        if rules is None or not isinstance(route, Route):
            guarded.append(route)
            continue
        guarded.append(
            Route(route.path, Guard(route.endpoint, rules), methods=route.methods, name=route.name)
        )
    return guarded


class _Refused(Exception):
    def __init__(
        self, status: int, message: str, code: str, *, retry_after: float | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after
        self.close = close


class Guard:
    """The ASGI app of one guarded route: the checks, then the endpoint."""

    def __init__(self, endpoint: Any, rules: RouteRules) -> None:
        self.endpoint = endpoint
        self.rules = rules
        # Awaited here, not through Starlette's `request_response`: that wraps the endpoint in
        # the exception handlers a second time (the app's ExceptionMiddleware already runs
        # them) at three coroutine frames and a closure per request.
        self.app: ASGIApp = (
            self._run if inspect.iscoroutinefunction(endpoint) else request_response(endpoint)
        )

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        state = request.app.state
        settings: Settings = state.settings
        limiter: Limiter = state.limiter
        shutdown: Shutdown = state.shutdown
        rules = self.rules
        # A reconnect to an article endpoint resumes from the log and never generates again.
        generates = rules.generates and not (rules.follows and _resumes(request))
        try:
            if generates:
                # One start per loop iteration: the streams under way go first (start_gate).
                await state.start_gate.turn()
                if shutdown.draining:
                    raise _Refused(503, "This sserelay instance is shutting down. Retry; "
                                   "another instance will take the request.", "shutting_down",
                                   retry_after=1, close=True)
            client = self._identify(request, state.tickets)
            body: bytes | None = None
            if rules.body is not None and request.method == "POST":
                body = await _read_body(scope, receive, settings, rules.body)
                if body is None:
                    return  # the client left before sending it all: nobody to answer
            permit = None
            if generates:
                tokens = estimate_tokens(
                    len(body) if body is not None else len(query_params(request).get("prompt", ""))
                )
                permit = await limiter.admit(client, tokens)
        except _Refused as exc:
            await _refusal(rules.dialect, exc)(scope, receive, send)
            return
        except (LimitExceeded, GatewayError) as exc:
            retry_after = exc.retry_after if isinstance(exc, LimitExceeded) else None
            refused = _Refused(exc.status, exc.message, exc.code, retry_after=retry_after)
            await _refusal(rules.dialect, refused)(scope, receive, send)
            return
        inner = receive if body is None else _replay(body, receive)
        if rules.follows:
            inner = shutdown.until_cut(inner)
            scope[CUT_KEY] = shutdown  # a pushed response subscribes instead of receiving
        if permit is None:
            await self.app(scope, inner, send)
            return
        with holding(permit):
            await self.app(scope, inner, send)

    def _identify(self, request: Request, tickets: TicketSigner) -> str:
        """The client's name for the limits; raises GatewayError(401) for a stranger."""
        ticket = query_params(request).get("ticket") if self.rules.tickets else None
        if ticket is not None:
            if not tickets.verify(ticket, str(request.path_params.get("stream_id", ""))):
                raise GatewayError(
                    401, "This ticket is not valid for this stream, or it has expired. "
                    "Follow the stream with your key, or start a new one for a new ticket.",
                    "invalid_ticket",
                )
            return "ticket"
        key = authenticate(request, request.app.state.gateway.keys)
        if key is not None:
            return f"key:{key.id}"
        peer = request.scope.get("client")  # (host, port): `request.client` makes a tuple
        return f"addr:{peer[0] if peer else 'unknown'}"


def _resumes(request: Request) -> bool:
    return requested_resume(request) is not None


async def _read_body(
    scope: Scope, receive: Receive, settings: Settings, kind: BodyKind
) -> bytes | None:
    """The whole body, or None if the client left; 413 past the limit (declared or sent),
    408 if it takes longer than the body timeout, and the prompt size checks."""
    limit = settings.max_body_bytes if kind == "article" else settings.max_gateway_body_bytes
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    body = bytearray()
    try:
        async with deadline(settings.body_timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                body += message.get("body", b"")
                if len(body) > limit:
                    raise _too_large(limit)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise _Refused(
            408, f"The request body did not arrive within {settings.body_timeout:g} s.",
            "request_timeout", close=True,
        ) from None
    whole = bytes(body)
    parsed = _check_prompt(whole, settings, kind)
    if parsed is not None:
        scope[PARSED_BODY_KEY] = (len(whole), parsed)
    return whole


def _check_prompt(body: bytes, settings: Settings, kind: BodyKind) -> dict[str, Any] | None:
    """The size checks on a JSON object's prompt; the object, parsed (None: not one)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the endpoint says what is wrong with it, in its own words
    if not isinstance(parsed, dict):
        return None
    max_chars = (
        settings.max_prompt_chars if kind == "article" else settings.max_gateway_prompt_chars
    )
    check_prompt_size(parsed, max_messages=settings.max_messages, max_chars=max_chars)
    return parsed


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _too_large(limit: int) -> _Refused:
    # Connection: close, so the server stops reading the rest (it would read it all to keep
    # the connection) and the client learns at once instead of uploading it.
    return _Refused(
        413, f"The request body is larger than the limit of {limit} bytes.",
        "request_too_large", close=True,
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the body already read over again, then the real one."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


def _refusal(dialect: Dialect, refused: _Refused) -> Response:
    error = GatewayError(refused.status, refused.message, refused.code)
    if dialect == "anthropic":
        content: dict[str, Any] = {"type": "error", "error": anthropic_error(error)}
    else:
        content = {"error": openai_error(error)}
    headers = {}
    if refused.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(refused.retry_after)))
    if refused.close:
        headers["Connection"] = "close"
    return Response(
        orjson.dumps(content), status_code=refused.status, headers=headers,
        media_type="application/json",
    )
