"""What sserelay reports about its requests and streams: metrics and JSON log lines.

The hooks in the relay code call these methods once per request or stream (context.py).
Each request ends with one `request` line and each stream with one `stream` line in the
`sserelay.requests` / `sserelay.streams` loggers. Lines carry ids, names, counts and
durations; the prompt only when `log_content` is on (`[logging] content = true`); answer
text and keys never.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from sserelay.keys.ledger import UsageRow
from sserelay.observability.context import RequestContext, StreamMarks, clock, current_request
from sserelay.observability.json_logging import log_fields
from sserelay.observability.metrics import LogSize, Metrics

__all__ = ["Telemetry"]

_requests_log = logging.getLogger("sserelay.requests")
_streams_log = logging.getLogger("sserelay.streams")
_UPSTREAM_FAILURES = frozenset({"error", "truncated"})


def _ms(seconds: float | None) -> float | None:
    """Milliseconds to the microsecond. Not `round(x, 3)`, which goes through a decimal
    string: ~1.5k instructions a call, eight calls a stream (callgrind)."""
    return None if seconds is None else math.floor(seconds * 1_000_000 + 0.5) / 1000


class Telemetry:
    def __init__(self, *, metrics: bool = True, log_content: bool = False,
                 log_size: LogSize | None = None) -> None:
        self.metrics = Metrics(log_size) if metrics else None
        self.log_content = log_content

    # -- requests ------------------------------------------------------------------------

    def request_ended(self, ctx: RequestContext) -> None:
        now = clock()
        status = ctx.status or 500
        if self.metrics is not None:
            self.metrics.requests.labels(str(status)).inc()
        fields: dict[str, Any] = {
            "event": "request", "request_id": ctx.request_id, "method": ctx.method,
            "path": ctx.path, "status": status, "api": ctx.api, "key_id": ctx.key_id,
            "model": ctx.model, "upstream": ctx.upstream,
            "duration_ms": _ms(now - ctx.started),
            "upstream_wait_ms": _ms(ctx.upstream_wait_until(now)),
            "overhead_ms": _ms(overhead(ctx, ctx.response_started or now)),
        }
        if ctx.usage is not None:
            fields["prompt_tokens"], fields["completion_tokens"] = ctx.usage
        if ctx.prompt is not None:
            fields["prompt"] = ctx.prompt
        log_fields(_requests_log, "request", fields)

    # -- streams -------------------------------------------------------------------------

    def stream_started(self, api: str) -> None:
        if self.metrics is not None:
            self.metrics.streams_started.labels(api).inc()
            self.metrics.active_streams.inc()

    def stream_ended(
        self, ctx: RequestContext, *, api: str, ending: str, marks: StreamMarks,
        tokens: tuple[int, int], estimated: bool, stream_id: str | None = None,
    ) -> None:
        now = clock()
        first = marks.first_at()
        ttft = None if first is None else first - ctx.started
        metrics = self.metrics
        if metrics is not None:
            metrics.active_streams.dec()
            metrics.streams_ended.labels(api, ending).inc()
            metrics.chunks.labels(api).inc(marks.chunks)
            metrics.bytes.labels(api).inc(marks.size)
            if ttft is not None:
                metrics.first_token.labels(api).observe(ttft)
            metrics.inter_chunk.labels(api).observe_all(marks.gaps())
            if ending in _UPSTREAM_FAILURES:
                metrics.upstream_errors.labels(ctx.upstream or "unknown",
                              "mid_stream").inc()
        fields: dict[str, Any] = {
            "event": "stream", "request_id": ctx.request_id, "stream_id": stream_id,
            "api": api, "key_id": ctx.key_id, "model": ctx.model, "upstream": ctx.upstream,
            "status": ctx.status, "ending": ending, "prompt_tokens": tokens[0],
            "completion_tokens": tokens[1], "tokens_estimated": estimated,
            "chunks": marks.chunks, "bytes": marks.size, "ttft_ms": _ms(ttft),
            "duration_ms": _ms(now - ctx.started),
        }
        log_fields(_streams_log, "stream", fields)

    def generation_ended(self, ctx: RequestContext, *, api: str, ending: str,
                         marks: StreamMarks, completion_chunks: int, stream_id: str) -> None:
        """A stream of the relay endpoints. Its tokens are the upstream's usage when the
        gateway's ledger recorded it (/v1/streams), else the chunks relayed (an estimate)."""
        if ctx.usage is not None:
            tokens, estimated = ctx.usage, False
        else:
            tokens, estimated = (0, completion_chunks), True
            if self.metrics is not None:
                self.metrics.tokens.labels(ctx.key_id or "none",
                                   ctx.model or "unknown", "completion").inc(completion_chunks)
        self.stream_ended(ctx, api=api, ending=ending, marks=marks, tokens=tokens,
                          estimated=estimated, stream_id=stream_id)

    def usage_recorded(self, row: UsageRow) -> None:
        """The gateway's ledger listener: one row per /v1 request, streamed or not."""
        metrics = self.metrics
        if metrics is not None:
            key = row.key_id or "none"
            metrics.tokens.labels(key, row.model, "prompt").inc(row.prompt_tokens)
            metrics.tokens.labels(key, row.model, "completion").inc(
                row.completion_tokens)
        ctx = current_request()
        if ctx is None:
            return
        ctx.key_id, ctx.model, ctx.upstream = row.key_id, row.model, row.upstream
        ctx.usage = (row.prompt_tokens, row.completion_tokens)
        if ctx.streaming:
            self.stream_ended(ctx, api=row.api, ending=row.ending,
                              marks=ctx.stream or StreamMarks(), tokens=ctx.usage,
                              estimated=row.estimated)

    # -- upstreams, resumes --------------------------------------------------------------

    def upstream_error(self, provider: str, status: int | str) -> None:
        if self.metrics is not None:
            self.metrics.upstream_errors.labels(provider, str(status)).inc()

    def resumed(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.resumes.labels(result).inc()

    def replayed(self) -> None:
        if self.metrics is not None:
            self.metrics.replays.inc()


def overhead(ctx: RequestContext, at: float) -> float:
    """sserelay's own time up to `at`: everything but waiting for the upstream."""
    return max(0.0, at - ctx.started - ctx.upstream_wait_until(at))
