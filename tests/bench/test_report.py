"""The benchmark report's text, from figures made up for the purpose (no processes)."""

from __future__ import annotations

from sserelay.bench.figures import Measurement, summarise
from sserelay.bench.loadgen import LoadResult
from sserelay.bench.machine import describe_machine
from sserelay.bench.profiles import PROFILES
from sserelay.bench.report import render
from sserelay.bench.runner import TargetResult
from sserelay.bench.targets import TARGETS, Kind

PROFILE = PROFILES["smoke"]
LOAD = PROFILE.loads[0]


def _run(cpu_s: float | None, errors: dict[str, int]) -> Measurement:
    ok = LOAD.streams - sum(errors.values())
    figures = {"p50": 100.0, "p99": 200.0}
    return Measurement(
        load=LOAD,
        result=LoadResult(streams=LOAD.streams, ok=ok, chunks=ok * LOAD.tokens, errors=errors,
                          latency_us=figures, later_latency_us=figures,
                          ttft_ms={"p50": 1.0}),
        cpu_s=cpu_s, kernel_cpu_s=None if cpu_s is None else cpu_s / 2, helper_cpu_s=None,
        rss_before=None if cpu_s is None else 1 << 20, rss_peak=None if cpu_s is None else 2 << 20,
        other_load=0.0,
    )


def _result(kind: Kind, cpu_s: float | None, errors: dict[str, int],
            *more_runs: float) -> TargetResult:  # fmt: skip
    target = next(t for t in TARGETS if t.kind is kind)
    runs = [_run(cpu_s, errors), *(_run(more, errors) for more in more_runs)]
    return TargetResult(target, summaries=[summarise(runs)])


def test_streams_that_failed_are_listed_with_what_ended_them() -> None:
    """A run whose load generator saw streams fail names the error in the report, not only
    a count in *streams ok*; a run where none failed adds no such section."""
    broken = {"OSError: [Errno 104] Connection reset by peer": 1}
    report = render([_result(Kind.DIRECT, None, {}), _result(Kind.SSERELAY, 0.01, broken)],
                    "smoke", PROFILE, describe_machine(), None)
    assert "## Streams that failed" in report
    assert "run 1: OSError: [Errno 104] Connection reset by peer (x1)" in report
    clean = render([_result(Kind.DIRECT, None, {}), _result(Kind.SSERELAY, 0.01, {})],
                   "smoke", PROFILE, describe_machine(), None)
    assert "## Streams that failed" not in clean


def test_the_ratio_to_the_naive_relay_shows_its_spread_over_the_rounds() -> None:
    """The naive baseline runs as many rounds as the others, and each row's "x less than
    naive" shows its lowest and highest within a round (naive's run i over the row's run
    i) beside the ratio of the medians."""
    report = render([_result(Kind.DIRECT, None, {}),
                     _result(Kind.SSERELAY, 0.02, {}, 0.04),
                     _result(Kind.NAIVE, 0.4, {}, 0.6)],
                    "smoke", PROFILE, describe_machine(), None)  # fmt: skip
    line = next(line for line in report.splitlines() if ": CPU per chunk vs naive |" in line)
    assert "| 16.7x less (rounds 15.0-20.0x) | ≥ 10x less | yes |" in line, line
    assert "(the naive baseline: 1)" not in report
