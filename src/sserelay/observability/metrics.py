"""sserelay's Prometheus metrics, in a registry of their own (`GET /metrics`).

Cost: the relay loops only count into local variables (chunks, bytes, and a timestamp for
chunk 1 and for one chunk pair in eight); everything here is called once per request or
per stream, at its start or end. A prometheus-client counter or histogram update takes a
lock and a label lookup, about a microsecond, which per chunk would be a few percent of
sserelay's whole per-chunk cost (docs/benchmarks.md); per stream it is nothing.

Labels stay bounded: `api` is one of a handful of names, `ending` one of the typed endings,
`provider` the configured upstream names, `status` an HTTP status or "mid_stream", `key` the
key ids (or "none"), `model` the names clients asked for that routed somewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "LogSize", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. First tokens: from tens of ms (a local model) to a minute (a queued reasoning
# model). Gaps between chunks: a fast model writes every few ms.
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

M = TypeVar("M", Counter, Gauge, Histogram)

LogSize = Callable[[], tuple[int, int] | None]
"""Streams and entries held by the stream log, or None when it cannot say cheaply."""


class _LogSizeCollector(Collector):
    def __init__(self, size: LogSize) -> None:
        self._size = size

    def collect(self) -> Iterator[GaugeMetricFamily]:
        found = self._size()
        if found is None:
            return
        streams, entries = found
        yield GaugeMetricFamily("sserelay_stream_log_streams",
                                "Streams the stream log holds (live and retained).", streams)
        yield GaugeMetricFamily("sserelay_stream_log_entries",
                                "Events the stream log holds, over all its streams.", entries)


class Metrics:
    def __init__(self, log_size: LogSize | None = None) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("sserelay_requests", "HTTP requests answered, by status.",
                                ["status"], registry=registry)
        self.active_streams = Gauge("sserelay_active_streams",
                                    "Streams being relayed now.", registry=registry)
        self.streams_started = Counter("sserelay_streams_started", "Streams started.",
                                       ["api"], registry=registry)
        self.streams_ended = Counter("sserelay_streams_ended",
                                     "Streams ended, by typed ending.", ["api", "ending"],
                                     registry=registry)
        self.first_token = Histogram(
            "sserelay_time_to_first_token_seconds",
            "From the request to the first chunk relayed.", ["api"],
            buckets=_TTFT_BUCKETS, registry=registry)
        self.inter_chunk = Histogram(
            "sserelay_inter_chunk_seconds",
            "Gaps between consecutive chunks relayed (one gap in eight is sampled).", ["api"],
            buckets=_GAP_BUCKETS, registry=registry)
        self.chunks = Counter("sserelay_relayed_chunks", "Chunks relayed.", ["api"],
                              registry=registry)
        self.bytes = Counter("sserelay_relayed_bytes", "Bytes of events relayed.", ["api"],
                             registry=registry)
        self.tokens = Counter("sserelay_tokens", "Tokens, by client key, model and kind "
                              "(prompt or completion).", ["key", "model", "kind"],
                              registry=registry)
        self.upstream_errors = Counter(
            "sserelay_upstream_errors", "Upstream failures, by provider and HTTP status "
            "(mid_stream: after the stream started).", ["provider", "status"],
            registry=registry)
        self.resumes = Counter("sserelay_resumes", "Reconnections with Last-Event-ID, by "
                               "result: resumed, or nothing left (204).", ["result"],
                               registry=registry)
        self.replays = Counter("sserelay_replays", "Followers of a stream this instance is "
                               "not generating: replayed from the stream log.",
                               registry=registry)
        if log_size is not None:
            registry.register(_LogSizeCollector(log_size))
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def child(self, metric: M, *values: str) -> M:
        """`metric.labels(*values)`, remembered. prometheus-client's `labels()` validates
        and takes a lock on every call: ~1.5% of a two-token stream's relay CPU (py-spy),
        for the ~9 calls a stream makes. Children are never removed, so a remembered one
        stays the registered one; the labels are bounded (above), and so is this dict."""
        found = self._children.get((metric, values))
        if found is None:
            found = self._children[(metric, values)] = metric.labels(*values)
        child: M = found
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)
