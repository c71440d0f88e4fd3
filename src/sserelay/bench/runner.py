"""Runs the benchmark: each target under each load, then a capacity ramp; returns raw figures.

The orchestrator only starts processes and reads /proc; the load comes from a separate
load-generator process, so none of the three (orchestrator, load generator, upstream)
is ever charged to the relay under test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sserelay.bench.figures import Measurement, RampStep, Summary, summarise
from sserelay.bench.loadgen import LoadResult, RequestSpec
from sserelay.bench.procstat import (
    RssSampler,
    cpu_between,
    cpu_seconds,
    machine_cpu_seconds,
    read_cpu,
    rss_bytes,
)
from sserelay.bench.profiles import Load, Profile
from sserelay.bench.targets import BenchEnv, Kind, Running, Target, TargetUnavailable, launch
from sserelay.testing.procs import ServerProcess

__all__ = ["TargetResult", "measure", "raise_fd_limit", "run_benchmark", "run_loadgen", "warm_up"]

# A tiny load that opens connections and warms caches before anything is measured; a target
# that cannot serve it is reported unavailable (e.g. an endpoint that does not exist yet).
_WARM_UP = Load(streams=2, tokens=3, rate=100)

Log = Callable[[str], None]


@dataclass(slots=True)
class TargetResult:
    target: Target
    unavailable: str | None = None
    summaries: list[Summary] = field(default_factory=list)
    ramp: list[RampStep] = field(default_factory=list)


def raise_fd_limit() -> None:
    # Each stream costs the relay two sockets; children inherit the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_loadgen(spec: RequestSpec, load: Load) -> LoadResult:
    argv = [
        sys.executable, "-m", "sserelay.bench.loadgen",
        "--spec", json.dumps(dataclasses.asdict(spec)),
        "--streams", str(load.streams), "--tokens", str(load.tokens),
        "--timeout", f"{load.timeout:g}", "--spread", f"{load.spread:g}",
    ]  # fmt: skip
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=load.timeout + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr[-3000:]}")
    return LoadResult.from_json(json.loads(done.stdout))


def warm_up(target: Target, running: Running) -> None:
    spec = target.request(running.url, _WARM_UP)
    result = run_loadgen(spec, _WARM_UP)
    if result.ok != result.streams:
        reason = "; ".join(result.errors) or "streams did not complete"
        raise TargetUnavailable(f"not yet available ({reason})")


def measure(target: Target, running: Running, env: BenchEnv, load: Load) -> Measurement:
    spec = target.request(running.url, load)
    charged, helpers = running.pids(), running.helper_pids()
    upstream = [env.upstream.proc.pid]
    rss_before = rss_bytes(charged) if charged else None
    relay_before, helper_before = read_cpu(charged), read_cpu(helpers)
    upstream_before = cpu_seconds(upstream)
    busy_before, total_before = machine_cpu_seconds()
    with RssSampler(running.pids) as rss:
        result = run_loadgen(spec, load)
    busy, total = machine_cpu_seconds()
    # The scheduler's nanoseconds rather than 10 ms ticks where they hold all the CPU (not
    # for Flask's per-request threads, whose time left with them): `cpu_between`.
    cpu, kernel = cpu_between(relay_before, read_cpu(running.pids()))
    helper_cpu, _ = cpu_between(helper_before, read_cpu(running.helper_pids()))
    ours = cpu + helper_cpu + cpu_seconds(upstream) - upstream_before + result.cpu_s
    return Measurement(
        load=load,
        result=result,
        cpu_s=cpu if charged else None,
        kernel_cpu_s=kernel if charged else None,
        helper_cpu_s=helper_cpu if helpers else None,
        rss_before=rss_before,
        rss_peak=rss.peak if charged else None,
        other_load=max(0.0, busy - busy_before - ours) / max(1e-9, total - total_before),
    )


def _ramp(
    target: Target,
    running: Running,
    profile: Profile,
    direct: dict[int, float],
    log: Log,
) -> list[RampStep]:
    """Raise K until p99 added latency (vs direct at the same K) passes the limit.

    A step over the limit is tried once more before the search stops, and direct's steps
    are all run twice, the better run kept: one burst of other processes' work on a shared
    machine should not decide the answer."""
    steps: list[RampStep] = []
    is_direct = target.kind is Kind.DIRECT
    for streams in profile.ramp_streams:
        load = Load(streams, profile.ramp_tokens, profile.ramp_rate)
        step: RampStep | None = None
        for _attempt in range(2):
            result = run_loadgen(target.request(running.url, load), load)
            tried = RampStep(streams, result.latency_us["p99"], result.streams - result.ok)
            if step is None or (tried.failed, tried.p99_us) < (step.failed, step.p99_us):
                step = tried
            if not is_direct and _within(step, direct, profile):
                break
        assert step is not None
        steps.append(step)
        added_ms = (step.p99_us - direct.get(streams, 0.0)) / 1e3
        what = "p99" if is_direct else "p99 added"
        log(f"  ramp {streams:>5} streams: {what} {added_ms:8.2f} ms, {step.failed} failed")
        if not is_direct and not _within(step, direct, profile):
            break  # bounded: once over the limit, larger K only takes longer to say so
    return steps


def _within(step: RampStep, direct: dict[int, float], profile: Profile) -> bool:
    added_ms = (step.p99_us - direct.get(step.streams, 0.0)) / 1e3
    return not step.failed and added_ms < profile.p99_limit_ms


def _run_round(
    target: Target, env: BenchEnv, profile: Profile, runs: dict[Load, list[Measurement]],
    log: Log,
) -> None:
    """One run of each load through `target`, each in a fresh process."""
    for load in profile.loads:
        with launch(target, env) as running:
            warm_up(target, running)
            runs[load].append(measure(target, running, env, load))
            log(_describe(target, runs[load][-1]))


def _run_ramp(
    target: Target, env: BenchEnv, profile: Profile, direct_ramp: dict[int, float], log: Log
) -> list[RampStep]:
    with launch(target, env) as running:
        warm_up(target, running)
        return _ramp(target, running, profile, direct_ramp, log)


def _failed(outcome: TargetResult, exc: Exception, log: Log) -> None:
    if isinstance(exc, TargetUnavailable):
        outcome.unavailable = str(exc)
    else:  # one broken target must not cost the whole run: report it and go on
        outcome.unavailable = f"failed during the run: {str(exc)[-500:]}"
    log(f"{outcome.target.title}: {outcome.unavailable}")


def _describe(target: Target, m: Measurement) -> str:
    cpu = m.per_chunk_us(m.cpu_s)
    cpu_text = "—" if cpu is None else f"{cpu:.1f} µs/chunk"
    lat = m.result.latency_us
    failed = "".join(f"; {error} (x{count})" for error, count in m.result.errors.items())
    return (
        f"{target.title} | {m.load.label}: {cpu_text}, latency p50 {lat['p50'] / 1e3:.2f} ms"
        f" p99 {lat['p99'] / 1e3:.2f} ms, {m.result.ok}/{m.result.streams} streams ok,"
        f" other load {m.other_load:.0%}{failed}"
    )


def run_benchmark(profile: Profile, targets: Sequence[Target], log: Log) -> list[TargetResult]:
    """Start the upstream, then run every target in turn; direct must be first."""
    if not targets or targets[0].kind is not Kind.DIRECT:
        raise ValueError("the direct target must come first: the others are measured against it")
    raise_fd_limit()
    started = time.monotonic()

    def timed_log(message: str) -> None:
        log(f"[{time.monotonic() - started:6.1f}s] {message}")

    results: list[TargetResult] = []
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(
            ServerProcess([sys.executable, "-m", "sserelay.bench.stamped_upstream",
                           "--port", "{port}"])
        )  # fmt: skip
        env = BenchEnv(upstream)
        results = [TargetResult(target) for target in targets]
        runs: dict[str, dict[Load, list[Measurement]]] = {
            r.target.key: {load: [] for load in profile.loads} for r in results
        }
        # Rounds: every target once, then again. A drift in what else the shared machine runs
        # then falls on all targets alike, not on whichever ran during it, and nginx's
        # figure, which every ratio divides by, is taken across the whole run.
        for _ in range(profile.repeats):
            for outcome in results:
                target = outcome.target
                if outcome.unavailable is None:
                    try:
                        _run_round(target, env, profile, runs[target.key], timed_log)
                    except (TargetUnavailable, RuntimeError, subprocess.TimeoutExpired) as exc:
                        _failed(outcome, exc, timed_log)
        direct_ramp: dict[int, float] = {}
        for outcome in results:
            if outcome.unavailable is not None:
                continue
            outcome.summaries = [summarise(runs[outcome.target.key][load])
                                 for load in profile.loads]
            try:
                outcome.ramp = _run_ramp(outcome.target, env, profile, direct_ramp, timed_log)
            except (TargetUnavailable, RuntimeError, subprocess.TimeoutExpired) as exc:
                _failed(outcome, exc, timed_log)
            if outcome.target.kind is Kind.DIRECT:
                direct_ramp = {s.streams: s.p99_us for s in outcome.ramp}
    timed_log(f"done; medians of {profile.repeats} run(s) per load, in rounds")
    return results
