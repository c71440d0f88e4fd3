"""The HTTP server sserelay runs: uvicorn, plus a deadline for request headers and the hook
that starts a graceful shutdown.

uvicorn (0.54, httptools) has no header timeout: its keep-alive timer only runs between
requests and any byte received cancels it, so a client that sends its headers one byte at a
time (slowloris), or connects and sends nothing, holds a connection and a file descriptor
for ever. `header_deadline_protocol` adds one: the request line and headers must have
arrived `header_timeout` seconds after the connection opened or the next request's first
byte; otherwise the client gets 408 and the connection is closed. Between requests the
connection is idle, not late: uvicorn's keep-alive timer (`keepalive_timeout`) closes it,
without a word, as HTTP/1.1 allows (RFC 9112, 9.8). Bodies have their own limit, enforced
where they are read (web/guard.py, `body_timeout`).

On SIGTERM uvicorn stops accepting, closes idle connections and waits for the others
(`timeout_graceful_shutdown`), then runs the lifespan shutdown; `GracefulServer` tells the
app first (`Shutdown.begin`), so that it refuses new streams and cuts the running ones at the
end of its grace period, before uvicorn's own limit (set a few seconds later) would cancel
them with a traceback in the log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import socket
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sserelay.settings import Settings
from sserelay.web import collector
from sserelay.web.descriptors import reserve_descriptors
from sserelay.web.event_stream import ON_GONE_ATTR
from sserelay.web.shutdown import Shutdown

__all__ = ["GracefulServer", "header_deadline_protocol", "serve"]

_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 44\r\nconnection: close\r\n\r\n"
    b"The request headers did not arrive in time.\n"
)
# uvicorn's words for a response the app stopped writing; at shutdown that is on purpose
# (followers are cut so that they resume elsewhere), so it is not logged as an error then.
_CUT_RESPONSE = "ASGI callable returned without completing response."
# Beyond the grace period, what uvicorn waits before cancelling what is left.
_SERVER_MARGIN = 5.0
# Listening sockets on the one port (`_listening_group`): as many connections accepted per
# loop iteration. Measured at 500 streams started within 50 ms (docs/decisions.md).
LISTENERS = 16


def header_deadline_protocol(header_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing connections whose headers do not arrive in
    `header_timeout` seconds."""

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        # It tells a pushed event stream when its client goes (web/event_stream.py), so
        # the stream needs no task of its own waiting on `receive()` for it.
        announces_gone = True

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            # Bytes between requests: the next request's headers are due from now (stray
            # line breaks before a request line included). Not from the previous response's
            # end: an idle connection is not a slow one, and a 408 written into it would
            # answer the request its client sends next.
            if self._header_timer is None and (
                self.cycle is None or self.cycle.response_complete
            ):
                self._arm()
            super().data_received(data)

        def on_message_begin(self) -> None:
            # A request that begins behind one still being served (pipelined) is due too.
            if self._header_timer is None:
                self._arm()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)
            on_gone = getattr(self.cycle, ON_GONE_ATTR, None)
            if on_gone is not None:
                on_gone()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                # A request is being served and the next one began behind it (pipelined):
                # a 408 now would cut into the response, so look again later.
                self._arm()
                return
            self.transport.write(_TIMED_OUT)
            self.transport.close()

    return HeaderDeadlineProtocol


class _QuietCuts(logging.Filter):
    def __init__(self, shutdown: Shutdown) -> None:
        super().__init__()
        self._shutdown = shutdown

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self._shutdown.is_cut and record.getMessage() == _CUT_RESPONSE)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, listening on a group of sockets where it can (`_listening_group`),
    telling the app when a shutdown begins, and with the garbage collector set for a
    long-lived relay (web/collector.py)."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self.app_shutdown = shutdown
        self.older_collections = collector.OlderCollections()
        logging.getLogger("uvicorn.error").addFilter(_QuietCuts(shutdown))

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        group = _listening_group(self.config) if sockets is None else None
        await super().startup(sockets if group is None else group)
        if group is not None:  # uvicorn logs this only for sockets it bound itself
            self._log_started_message(group[:1])
        collector.settle()
        self.older_collections.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.older_collections.stop()
        self.app_shutdown.begin()
        await super().shutdown(sockets)


def _listening_group(config: uvicorn.Config) -> list[socket.socket] | None:
    """`LISTENERS` sockets bound together to the configured port (SO_REUSEPORT), for uvicorn
    to listen on; None where uvicorn should bind as usual: a Unix socket, a passed
    descriptor, port 0, a host name (it may resolve to several addresses), or a system
    other than Linux or without SO_REUSEPORT (elsewhere it does not spread connections).

    libuv (1.45 and later, so uvloop) accepts one connection per listening socket per
    loop iteration. Under a burst of new connections the rest wait in the kernel's queue,
    each iteration a few hundred microseconds of other work: 500 streams started within
    50 ms waited up to 300 ms to be accepted, their first tokens with them. The kernel
    spreads connections over a SO_REUSEPORT group, and each of its sockets is accepted
    from in every iteration (docs/decisions.md, "Accepting a burst").

    The group's sockets all set SO_REUSEPORT, so a second sserelay started on the same port
    would join this one instead of failing; a plain bind first makes it fail as before."""
    host, port = config.host, config.port
    if (LISTENERS < 2 or not sys.platform.startswith("linux") or config.uds is not None
            or config.fd is not None or port == 0):
        return None
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:  # a host name
        return None
    group: list[socket.socket] = []
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        for _ in range(LISTENERS):
            sock = socket.socket(family, socket.SOCK_STREAM)
            group.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            except OSError:  # a kernel or sandbox without it: one socket, as uvicorn binds
                for each in group:
                    each.close()
                return None
            if family == socket.AF_INET6:  # as asyncio's create_server: IPv6 only
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))  # uvicorn listens on them once the app has started
            sock.setblocking(False)
    except OSError as exc:  # the port is in use, or the address is not this machine's
        for sock in group:
            sock.close()
        logging.getLogger("uvicorn.error").error(exc)
        sys.exit(STARTUP_FAILURE)
    return group


def _lean_log_records() -> None:
    """Log records without what sserelay's lines never show: the caller's file and line (a
    walk up the stack per record), the thread, the process id (a syscall) and the
    multiprocessing name. The logging HOWTO's "Optimization" section names these switches;
    two lines per stream made them ~5% of a streaming request's CPU (cProfile)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def serve(app: Starlette, settings: Settings, **options: Any) -> None:
    """Run `app` (from `create_app`) until SIGTERM or Ctrl-C; `options` go to uvicorn."""
    reserve_descriptors()
    _lean_log_records()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=header_deadline_protocol(settings.header_timeout),
        # The access log would write prompts (query strings) to the log: off.
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace + _SERVER_MARGIN),
        # uvicorn's own default, 5 s, is httpx's pool expiry too (the OpenAI SDK's), so a
        # client could send its next request into the close (settings.py). Whole seconds:
        # uvicorn takes an int.
        timeout_keep_alive=math.ceil(settings.keepalive_timeout),
        # No `server: uvicorn` on every response: the software behind a gateway is nobody's
        # business (OWASP's secure headers project advises against naming it), and it is a
        # header uvicorn checks and writes per response. The Date header stays (RFC 9110,
        # 6.6.1: an origin server with a clock sends it).
        server_header=False,
        **options,
    )
    GracefulServer(config, app.state.shutdown).run()
