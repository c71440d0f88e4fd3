"""The figures: what one run measured, and the per-figure medians over repeated runs."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sserelay.bench.loadgen import LoadResult
from sserelay.bench.profiles import Load

__all__ = ["Measurement", "RampStep", "Summary", "summarise"]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One run of one load through one target."""

    load: Load
    result: LoadResult
    cpu_s: float | None  # the relay's own processes; None for direct (there is no relay)
    kernel_cpu_s: float | None  # the part of cpu_s spent in the kernel (system time)
    helper_cpu_s: float | None  # e.g. redis-server, which the relay makes work
    rss_before: int | None
    rss_peak: int | None
    # Share of all cores used during the run by processes outside the benchmark: on a
    # shared machine, the figure that says how far to trust the latencies.
    other_load: float

    def per_chunk_us(self, cpu_s: float | None) -> float | None:
        if cpu_s is None or not self.result.chunks:
            return None
        return cpu_s / self.result.chunks * 1e6

    @property
    def kib_per_stream(self) -> float | None:
        if self.rss_peak is None or self.rss_before is None:
            return None
        return max(0, self.rss_peak - self.rss_before) / self.load.streams / 1024


@dataclass(frozen=True, slots=True)
class RampStep:
    streams: int
    p99_us: float
    failed: int


@dataclass(frozen=True, slots=True)
class Summary:
    """A target's runs of one load, each figure taken on its own over the runs.

    CPU and memory: the median. Latencies: the best (lowest) run. On a shared machine other
    processes' bursts only ever add delay, never remove it, so the quietest run is the
    closest to what the relay itself adds (as timeit reports the minimum); direct's figures
    are taken the same way, so "added" compares like with like."""

    load: Load
    runs: int
    cpu_us_per_chunk: float | None
    kernel_us_per_chunk: float | None  # the kernel's part of cpu_us_per_chunk
    helper_us_per_chunk: float | None
    latency_p50_us: float
    latency_p99_us: float
    later_p99_us: float  # p99 once flowing: tokens made after the first bytes arrived
    ttft_p50_ms: float
    rss_peak: int | None
    kib_per_stream: float | None
    other_load: float
    worst_ok: int  # streams completed in the worst run
    # Each run's CPU per chunk, in run order: run i of every target was in round i.
    cpu_us_by_round: tuple[float | None, ...] = ()
    # Why streams failed, as "run N: <error> (xCOUNT)": a failure is never only a count.
    failures: tuple[str, ...] = ()

    @property
    def streams(self) -> int:
        return self.load.streams


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summarise(runs: Sequence[Measurement]) -> Summary:
    def each(figure: Callable[[Measurement], float | None]) -> float | None:
        return _median([figure(m) for m in runs])

    rss = each(lambda m: m.rss_peak)
    return Summary(
        load=runs[0].load,
        runs=len(runs),
        cpu_us_per_chunk=each(lambda m: m.per_chunk_us(m.cpu_s)),
        kernel_us_per_chunk=each(lambda m: m.per_chunk_us(m.kernel_cpu_s)),
        helper_us_per_chunk=each(lambda m: m.per_chunk_us(m.helper_cpu_s)),
        latency_p50_us=min(m.result.latency_us["p50"] for m in runs),
        latency_p99_us=min(m.result.latency_us["p99"] for m in runs),
        later_p99_us=min(m.result.later_latency_us.get("p99", 0.0) for m in runs),
        ttft_p50_ms=min(m.result.ttft_ms["p50"] for m in runs),
        rss_peak=None if rss is None else int(rss),
        kib_per_stream=each(lambda m: m.kib_per_stream),
        other_load=each(lambda m: m.other_load) or 0.0,
        worst_ok=min(m.result.ok for m in runs),
        cpu_us_by_round=tuple(m.per_chunk_us(m.cpu_s) for m in runs),
        failures=tuple(f"run {i}: {error} (x{count})" for i, m in enumerate(runs, 1)
                       for error, count in m.result.errors.items()),
    )
