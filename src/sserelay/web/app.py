"""The ASGI application: routes, CORS, error handlers, and the upstream's lifetime."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from sserelay.gateway import Gateway, GatewayConfig, gateway_routes
from sserelay.limits import Limiter
from sserelay.observability import ObserveRequests, Telemetry
from sserelay.relay.generation import Generations
from sserelay.settings import Settings
from sserelay.streams import MemoryStreamLog, StreamLog
from sserelay.upstream.errors import UpstreamError
from sserelay.upstream.openai_client import OpenAIUpstream
from sserelay.upstream.watchdog import Timeouts
from sserelay.web import article, streams_api
from sserelay.web.errors import (
    RequestError,
    handle_http_exception,
    handle_request_error,
    handle_unexpected,
    handle_upstream_error,
)
from sserelay.web.event_stream import RAW_SEND_KEY
from sserelay.web.guard import guard_routes
from sserelay.web.metrics import metrics_routes
from sserelay.web.shutdown import Shutdown
from sserelay.web.start_gate import StartGate
from sserelay.web.tickets import TicketSigner

STATIC_DIR = resources.files("sserelay.web") / "static"
_HOT_PATHS = {path: rank for rank, path in enumerate((
    "/v1/chat/completions", "/completionChat", "/v1/streams/{stream_id}", "/v1/streams",
    "/completion", "/completions/chat", "/v1/messages", "/v1/responses", "/v1/completions",
))}


async def chat_page(request: Request) -> Response:
    return FileResponse(str(STATIC_DIR / "chat.html"), headers={"Cache-Control": "no-cache"})


async def simple_page(request: Request) -> Response:
    """The article's minimal page: a prompt box and the answer as text."""
    return FileResponse(str(STATIC_DIR / "index.html"), headers={"Cache-Control": "no-cache"})


class _AppState(State):
    """Starlette's `State`, each value also an attribute of the instance. `State` keeps
    them in a dict read by `__getattr__`, which Python calls only after the normal lookup
    has failed, having built (and formatted the message of) an AttributeError to discard:
    ~16 times a stream, for `request.app.state.settings` and the like (callgrind: ~50k
    instructions of a /v1/streams stream's 2.26M)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        super().__init__(state)
        self.__dict__.update(self._state)

    def __setattr__(self, key: str, value: Any) -> None:
        super().__setattr__(key, value)
        self.__dict__[key] = value

    def __delattr__(self, key: str) -> None:
        super().__delattr__(key)
        del self.__dict__[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.__setattr__(key, value)

    def __delitem__(self, key: str) -> None:
        self.__delattr__(key)


class SserelayApp(Starlette):
    """Starlette, plus the server's own `send` kept in the scope for event-stream bodies,
    and the streaming routes called without the router.

    A request for one of `_HOT_PATHS` with a method its route takes goes through the same
    middleware as any other (errors, telemetry, CORS, the exception handlers), built once
    around that route's app instead of around the router: the router's regex scan and its
    four coroutine frames are per request, and each suspended frame is scanned by every
    garbage collection for as long as the stream lasts. Anything else, including a HEAD, a
    405 and a path under a root path, takes Starlette's way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = _AppState()
        # Filled with the middleware stack, on the first call.
        self._direct: dict[tuple[str, str], tuple[Route, ASGIApp]] = {}
        self._direct_params: list[tuple[str, Route, ASGIApp]] = []

    def build_middleware_stack(self) -> ASGIApp:
        direct: dict[tuple[str, str], tuple[Route, ASGIApp]] = {}
        with_params: list[tuple[str, Route, ASGIApp]] = []
        for route in self.router.routes:
            if not isinstance(route, Route) or route.path not in _HOT_PATHS:
                continue
            stack = self._stack_around(route.app)
            for method in route.methods or ():
                if method == "HEAD":
                    continue
                if route.param_convertors:
                    with_params.append((method, route, stack))
                else:
                    direct[(method, route.path)] = (route, stack)
        self._direct, self._direct_params = direct, with_params
        return self._stack_around(self.router)

    def _stack_around(self, inner: ASGIApp) -> ASGIApp:
        # Starlette's own stack (Starlette.build_middleware_stack) with `inner` at its centre.
        router = self.router
        self.router = inner  # type: ignore[assignment]
        try:
            return super().build_middleware_stack()
        finally:
            self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND_KEY] = send
        if self.middleware_stack is None:  # as Starlette does, on the first call
            self.middleware_stack = self.build_middleware_stack()
        if scope["type"] == "http" and not scope.get("root_path"):
            found = self._direct_route(scope)
            if found is not None:
                route, stack, params = found
                scope["app"] = self
                scope.setdefault("router", self.router)
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {**scope.get("path_params", {}), **params}
                await stack(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _direct_route(self, scope: Scope) -> tuple[Route, ASGIApp, dict[str, Any]] | None:
        method, path = scope["method"], scope["path"]
        hit = self._direct.get((method, path))
        if hit is not None:
            return hit[0], hit[1], {}
        for route_method, route, stack in self._direct_params:
            if route_method != method:
                continue
            match = route.path_regex.match(path)
            if match is not None:
                params = {
                    name: route.param_convertors[name].convert(value)
                    for name, value in match.groupdict().items()
                }
                return route, stack, params
        return None


def make_stream_log(settings: Settings) -> StreamLog:
    if settings.redis_url:
        from sserelay.streams import RedisStreamLog

        return RedisStreamLog(
            settings.redis_url,
            retention=settings.retention,
            flush_interval=settings.redis_flush_interval,
            unfollowed_flush_interval=settings.redis_unfollowed_flush_interval,
        )
    return MemoryStreamLog(retention=settings.retention)


def create_app(
    settings: Settings | None = None, gateway_config: GatewayConfig | None = None
) -> Starlette:
    """Build sserelay's ASGI app; `settings` default to the environment's, and the /v1
    gateway's configuration to one upstream taken from the same settings."""
    settings = settings or Settings.from_env()
    gateway_config = gateway_config or GatewayConfig.from_settings(settings)
    # Slow clients are dropped on every stream alike, whatever configured the gateway.
    gateway = Gateway(
        dataclasses.replace(gateway_config, slow_client_timeout=settings.slow_client_timeout),
        max_duration=settings.max_duration or None,
    )
    upstream = OpenAIUpstream(
        settings.openai_base_url,
        settings.openai_api_key,
        timeouts=Timeouts(
            connect=settings.connect_timeout,
            first_token=settings.first_token_timeout,
            idle=settings.idle_timeout,
            total=settings.max_duration,
        ),
    )

    stream_log = make_stream_log(settings)
    generations = Generations(
        stream_log,
        heartbeat=settings.heartbeat,
        slow_client_timeout=settings.slow_client_timeout,
    )
    # Metrics, a JSON log line per request and stream, Server-Timing (sserelay.observability).
    telemetry = Telemetry(metrics=settings.metrics, log_content=settings.log_content,
                          log_size=getattr(stream_log, "size", None))
    gateway.ledger.listeners.append(telemetry.usage_recorded)

    # Limits, tickets and graceful shutdown: see web/guard.py, which applies them per route.
    limiter = Limiter.from_settings(settings)
    tickets = TicketSigner(settings.ticket_secret, ttl=settings.ticket_ttl)

    async def close_gateway_upstreams() -> None:
        for provider in gateway.providers:
            await provider.aclose()

    shutdown = Shutdown(
        settings.shutdown_grace, generations, close_upstreams=close_gateway_upstreams
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.redis_url:
            await tickets.share_through_redis(settings.redis_url)
        try:
            yield
        finally:
            await shutdown.finish()
            await limiter.aclose()
            await generations.aclose()
            await stream_log.aclose()
            await upstream.aclose()
            await gateway.aclose()

    routes = guard_routes([
        Route("/", chat_page, methods=["GET"]),
        Route("/simple", simple_page, methods=["GET"]),
        Route("/completion", article.completion, methods=["GET"]),
        Route("/completionChat", article.completion_chat, methods=["GET"]),
        Route("/completions/chat", article.completions_chat_post, methods=["POST"]),
        Route("/v1/streams", streams_api.create_stream, methods=["POST"]),
        Route("/v1/streams/{stream_id}", streams_api.follow_stream, methods=["GET"]),
        Route("/v1/streams/{stream_id}", streams_api.stop_stream, methods=["DELETE"]),
        *gateway_routes(),
        Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]) + metrics_routes(telemetry)
    # Starlette tries routes in order (a regex match each): the streaming routes first.
    routes.sort(key=lambda r: _HOT_PATHS.get(getattr(r, "path", ""), len(_HOT_PATHS)))
    middleware = [Middleware(ObserveRequests, telemetry=telemetry)]
    if settings.cors_origins:
        # An explicit allow-list; with none configured no CORS header is ever sent, so only
        # same-origin pages can read the streams (and no middleware is paid for per
        # request). Never "*", never a reflected Origin.
        middleware.append(Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "Last-Event-ID"],
            expose_headers=["X-Sserelay-Stream"],
        ))
    app = SserelayApp(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            RequestError: handle_request_error,
            UpstreamError: handle_upstream_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
    )
    app.state.settings = settings
    app.state.upstream = upstream
    app.state.gateway = gateway
    app.state.generations = generations
    app.state.limiter = limiter
    app.state.tickets = tickets
    app.state.shutdown = shutdown
    app.state.start_gate = StartGate()
    app.state.telemetry = telemetry
    return app
