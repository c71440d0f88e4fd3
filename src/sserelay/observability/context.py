"""The request being served, for code that reports on it without being handed it.

`ObserveRequests` (middleware.py) sets a `RequestContext` for each HTTP request in a context
variable. Tasks started while serving it (a generation, a drained gateway stream) copy the
context when they are created, so they report to the same request. Outside a request
(tests that build the parts directly, the Flask and Django integrations) there is none and
nothing is reported: every hook is `ctx = current_request(); if ctx is not None: ...`.

What the hooks record is per request or per stream, never per chunk (see metrics.py).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sserelay.observability.telemetry import Telemetry

__all__ = ["RequestContext", "StreamMarks", "current_request", "using_request"]

clock = time.perf_counter


@dataclass(slots=True)
class StreamMarks:
    """What a stream's loop counted as it relayed: chunks, bytes, and the times of chunk 1
    and of chunk pairs (8, 9), (16, 17), ... (`chunks & 7 < 2`), from which the time to the
    first chunk and one inter-chunk gap in eight are taken at the end."""

    chunks: int = 0
    size: int = 0
    marks: list[float] = field(default_factory=list)

    def first_at(self) -> float | None:
        return self.marks[0] if self.marks else None

    def gaps(self) -> list[float]:
        marks = self.marks
        return [marks[i + 1] - marks[i] for i in range(1, len(marks) - 1, 2)]


@dataclass(slots=True, eq=False)
class RequestContext:
    telemetry: Telemetry
    request_id: str
    method: str
    path: str
    api: str | None = None
    """The gateway API (chat, completions, responses, messages), or the relay surface."""
    started: float = field(default_factory=clock)
    status: int | None = None
    response_started: float | None = None
    key_id: str | None = None
    model: str | None = None
    upstream: str | None = None
    prompt: Any = None
    """The prompt as sent (only kept when content logging is on)."""
    usage: tuple[int, int] | None = None
    upstream_wait: float = 0.0
    _waiting: int = 0
    _waiting_since: float = 0.0
    stream: StreamMarks | None = None
    """Set when a gateway stream of this request has ended (gateway/relay.py)."""
    streaming: bool = False
    pending_usage: Any = None

    def waiting_on_upstream(self) -> AbstractContextManager[None]:
        """Time spent waiting for the upstream, which is not sserelay's overhead. Nested and
        concurrent waits count once."""
        return _Waiting(self)

    def upstream_wait_until(self, now: float) -> float:
        """Upstream waiting so far, counting a wait still in progress up to `now`."""
        if self._waiting:
            return self.upstream_wait + now - self._waiting_since
        return self.upstream_wait

    def note_prompt(self, prompt: Any) -> None:
        if self.telemetry.log_content:
            self.prompt = prompt


_current: ContextVar[RequestContext | None] = ContextVar("sserelay_request", default=None)


def current_request() -> RequestContext | None:
    """The request being served by this task, if any."""
    return _current.get()


class _Waiting:
    __slots__ = ("ctx",)

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx

    def __enter__(self) -> None:
        ctx = self.ctx
        if ctx._waiting == 0:
            ctx._waiting_since = clock()
        ctx._waiting += 1

    def __exit__(self, *exc_info: object) -> None:
        ctx = self.ctx
        ctx._waiting -= 1
        if ctx._waiting == 0:
            ctx.upstream_wait += clock() - ctx._waiting_since


class using_request:
    """The block runs as part of `ctx`'s request (`current_request()`). A class rather than
    a generator: it is held for a stream's whole life, and two objects fewer per request."""

    __slots__ = ("_token", "ctx")

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self._token: Token[RequestContext | None] | None = None

    def __enter__(self) -> RequestContext:
        self._token = _current.set(self.ctx)
        return self.ctx

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
