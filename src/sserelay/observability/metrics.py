"""sserelay's Prometheus metrics, in a registry of their own (`GET /metrics`).

Cost: the relay loops only count into local variables (chunks, bytes, and a timestamp for
chunk 1 and for one chunk pair in eight); everything here is called once per request or
per stream, at its start or end. The counters and histograms are plain numbers in this
process, read into prometheus-client's metric families when /metrics is scraped: an update
is an addition (a histogram's, a bisect too), with no lock and no label check. They are
updated and scraped on the event loop's thread only. prometheus-client's own Counter and
Histogram take a lock and check their labels per update, ~35 µs of a stream's relay CPU for
the ~20 updates a stream makes, most of them the sampled gaps (docs/decisions.md, "Per-request
work, fourth round").

Labels stay bounded: `api` is one of a handful of names, `ending` one of the typed endings,
`provider` the configured upstream names, `status` an HTTP status or "mid_stream", `key` the
key ids (or "none"), `model` the names clients asked for that routed somewhere.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE", "Counter", "Gauge", "Histogram", "LogSize", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. First tokens: from tens of ms (a local model) to a minute (a queued reasoning
# model). Gaps between chunks: a fast model writes every few ms.
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

LogSize = Callable[[], tuple[int, int] | None]
"""Streams and entries held by the stream log, or None when it cannot say cheaply."""


C = TypeVar("C")


class _Family(Generic[C]):
    """A metric with labels: one child per label values, made on first use and kept (the
    labels are bounded, above)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        if not self.labelnames:
            self.labels()  # a metric without labels is scraped from the start, at zero

    def labels(self, *values: str) -> C:
        found = self._children.get(values)
        if found is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes the labels {self.labelnames}")
            found = self._children[values] = self._child()
        return found

    def _child(self) -> C:
        raise NotImplementedError

    def _label_values(self) -> Iterator[tuple[list[str], C]]:
        # Sorted: the scrape lists series in a stable order, as prometheus-client's does.
        for values in sorted(self._children):
            yield list(values), self._children[values]


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class Counter(_Family[_CounterChild]):
    def _child(self) -> _CounterChild:
        return _CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        """For a counter without labels."""
        self.labels().inc(amount)

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._label_values():
            family.add_metric(values, child.value)
        return family


class Gauge:
    """A gauge without labels."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def collect(self) -> Metric:
        return GaugeMetricFamily(self.name, self.documentation, value=self.value)


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # A value equal to a bound counts in that bound's bucket (`le`): bisect_left.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_all(self, values: Iterable[float]) -> None:
        counts, bounds = self.counts, self.bounds
        for value in values:
            counts[bisect_left(bounds, value)] += 1
            self.sum += value


class Histogram(_Family[_HistogramChild]):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                 buckets: Sequence[float]) -> None:
        self.bounds = tuple(sorted(float(b) for b in buckets))
        super().__init__(name, documentation, labelnames)

    def _child(self) -> _HistogramChild:
        return _HistogramChild(self.bounds)

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for values, child in self._label_values():
            cumulative, buckets = 0, []
            for le, count in zip(les, child.counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(values, buckets, child.sum)
        return family


class _Collected(Collector):
    """The metrics above, as prometheus-client's registry scrapes them."""

    def __init__(self, metrics: Sequence[Counter | Gauge | Histogram]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield metric.collect()


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
        self.requests = Counter("sserelay_requests", "HTTP requests answered, by status.",
                                ["status"])
        self.active_streams = Gauge("sserelay_active_streams", "Streams being relayed now.")
        self.streams_started = Counter("sserelay_streams_started", "Streams started.", ["api"])
        self.streams_ended = Counter("sserelay_streams_ended",
                                     "Streams ended, by typed ending.", ["api", "ending"])
        self.first_token = Histogram(
            "sserelay_time_to_first_token_seconds",
            "From the request to the first chunk relayed.", ["api"], buckets=_TTFT_BUCKETS)
        self.inter_chunk = Histogram(
            "sserelay_inter_chunk_seconds",
            "Gaps between consecutive chunks relayed (one gap in eight is sampled).", ["api"],
            buckets=_GAP_BUCKETS)
        self.chunks = Counter("sserelay_relayed_chunks", "Chunks relayed.", ["api"])
        self.bytes = Counter("sserelay_relayed_bytes", "Bytes of events relayed.", ["api"])
        self.tokens = Counter("sserelay_tokens", "Tokens, by client key, model and kind "
                              "(prompt or completion).", ["key", "model", "kind"])
        self.upstream_errors = Counter(
            "sserelay_upstream_errors", "Upstream failures, by provider and HTTP status "
            "(mid_stream: after the stream started).", ["provider", "status"])
        self.resumes = Counter("sserelay_resumes", "Reconnections with Last-Event-ID, by "
                               "result: resumed, or nothing left (204).", ["result"])
        self.replays = Counter("sserelay_replays", "Followers of a stream this instance is "
                               "not generating: replayed from the stream log.")
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collected([
            self.requests, self.active_streams, self.streams_started, self.streams_ended,
            self.first_token, self.inter_chunk, self.chunks, self.bytes, self.tokens,
            self.upstream_errors, self.resumes, self.replays,
        ]))
        if log_size is not None:
            self.registry.register(_LogSizeCollector(log_size))

    def render(self) -> bytes:
        return generate_latest(self.registry)
