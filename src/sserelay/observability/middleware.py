"""Every HTTP request: an id, a context for the hooks, a Server-Timing header, a log line.

`Server-Timing: sserelay;dur=<ms>, upstream;dur=<ms>` on every response: `sserelay` is the
time from receiving the request to starting the response, less the time spent waiting for
the upstream (opening it, its first event, retries); `upstream` is that wait. Browsers show
both in their developer tools (W3C Server Timing).

The id is the client's `X-Request-Id` when it is a plain token, else a new one; it is sent
back in `X-Request-Id` and is in every log line of the request.

Per chunk the cost is one plain function call that compares the message type and hands on
the send's own awaitable (no coroutine frame of its own).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from random import getrandbits

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sserelay.observability.context import RequestContext, clock, using_request
from sserelay.observability.telemetry import Telemetry, overhead

__all__ = ["GATEWAY_APIS", "ObserveRequests"]

GATEWAY_APIS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}
_SURFACES = {"/completion": "article", "/completionChat": "article",
             "/completions/chat": "article", "/v1/streams": "streams"}
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _new_request_id() -> str:
    """16 hex digits, as `secrets.token_hex(8)` gave, from `random`'s generator (reseeded in
    a forked child by the stdlib): a request id correlates log lines and is no secret, and
    `secrets` costs a getrandom() system call per request."""
    return f"{getrandbits(64):016x}"


def _api_of(path: str) -> str | None:
    api = GATEWAY_APIS.get(path) or _SURFACES.get(path)
    if api is None and path.startswith("/v1/streams/"):
        return "streams"
    return api


class ObserveRequests:
    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        path = scope["path"]
        ctx = RequestContext(
            self.telemetry,
            request_id=given if _CLIENT_ID.fullmatch(given) else _new_request_id(),
            method=scope["method"], path=path, api=_api_of(path),
        )

        def observed_send(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                now = clock()
                ctx.status, ctx.response_started = message["status"], now
                timing = (f"sserelay;dur={overhead(ctx, now) * 1000:.3f}, "
                          f"upstream;dur={ctx.upstream_wait_until(now) * 1000:.3f}")
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"server-timing", timing.encode()),
                    (b"x-request-id", ctx.request_id.encode()),
                ]
            return send(message)

        with using_request(ctx):
            try:
                await self.app(scope, receive, observed_send)
            finally:
                self.telemetry.request_ended(ctx)
