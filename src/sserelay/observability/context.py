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
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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

    @contextmanager
    def waiting_on_upstream(self) -> Iterator[None]:
        """Time spent waiting for the upstream, which is not sserelay's overhead. Nested and
        concurrent waits count once."""
        if self._waiting == 0:
            self._waiting_since = clock()
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
            if self._waiting == 0:
                self.upstream_wait += clock() - self._waiting_since

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


@contextmanager
def using_request(ctx: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
