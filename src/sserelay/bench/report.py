"""Turns raw figures into docs/benchmarks.md: tables, the issue's targets, the machine, a plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sserelay.bench.figures import Summary
from sserelay.bench.machine import Machine
from sserelay.bench.profiles import Load, Profile
from sserelay.bench.runner import TargetResult
from sserelay.bench.targets import Kind

__all__ = ["Row", "rows_for", "write_report"]

_MIB = 1 << 20
_KIB_PER_STREAM_LIMIT = 64
_P99_WITHIN_MS = 2.0
_NAIVE_FACTOR = 10


@dataclass(frozen=True, slots=True)
class Row:
    """One target under one load, relative to direct and to nginx under the same load."""

    title: str
    kind: Kind
    nginx_budget: float | None
    s: Summary
    added_p50_ms: float
    added_p99_ms: float
    added_later_p99_ms: float
    added_ttft_ms: float
    x_nginx: float | None
    # The ratio within each round (run i of the target over nginx's run i): how far the
    # machine moved it during this run.
    x_nginx_by_round: tuple[float, ...] = ()
    # How many times less CPU than the naive relay, within each round (its run i over the
    # target's run i).
    x_naive_by_round: tuple[float, ...] = ()


def rows_for(results: Sequence[TargetResult], load: Load) -> list[Row]:
    at = {r.target.title: s for r in results if (s := _at(r, load)) is not None}
    direct = next((at[r.target.title] for r in results
                   if r.target.kind is Kind.DIRECT and r.target.title in at), None)  # fmt: skip
    nginx = next((at[r.target.title] for r in results
                  if r.target.kind is Kind.NGINX and r.target.title in at), None)  # fmt: skip
    naive = next((at[r.target.title] for r in results
                  if r.target.kind is Kind.NAIVE and r.target.title in at), None)  # fmt: skip
    nginx_cpu = nginx.cpu_us_per_chunk if nginx else None
    rows = []
    for r in results:
        s = at.get(r.target.title)
        if s is None:
            continue
        cpu = s.cpu_us_per_chunk
        rows.append(
            Row(
                title=r.target.title,
                kind=r.target.kind,
                nginx_budget=r.target.nginx_budget,
                s=s,
                added_p50_ms=(s.latency_p50_us - (direct.latency_p50_us if direct else 0)) / 1e3,
                added_p99_ms=(s.latency_p99_us - (direct.latency_p99_us if direct else 0)) / 1e3,
                added_later_p99_ms=(s.later_p99_us - (direct.later_p99_us if direct else 0))
                / 1e3,
                added_ttft_ms=s.ttft_p50_ms - (direct.ttft_p50_ms if direct else 0),
                x_nginx=cpu / nginx_cpu if cpu is not None and nginx_cpu else None,
                x_nginx_by_round=_by_round(s, nginx),
                x_naive_by_round=_by_round(naive, s) if naive is not None else (),
            )
        )
    return rows


def _by_round(s: Summary, nginx: Summary | None) -> tuple[float, ...]:
    if nginx is None:
        return ()
    pairs = zip(s.cpu_us_by_round, nginx.cpu_us_by_round, strict=False)
    return tuple(cpu / ref for cpu, ref in pairs if cpu is not None and ref)


def _spread(by_round: tuple[float, ...], digits: int = 2) -> str:
    """' (rounds 1.60-2.50x)' where there were several rounds."""
    if len(by_round) < 2:
        return ""
    return f" (rounds {min(by_round):.{digits}f}-{max(by_round):.{digits}f}x)"


def _at(result: TargetResult, load: Load) -> Summary | None:
    return next((s for s in result.summaries if s.load == load), None)


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _load_table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| target | relay CPU µs per chunk | of it, in the kernel | x nginx "
        "| added latency p50 / p99 (ms) | p99 once flowing (ms) "
        "| added TTFT p50 (ms) | peak RSS (MiB) | KiB per active stream | streams ok "
        "| other load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = row.s
        direct = row.kind is Kind.DIRECT
        latency = (
            f"{s.latency_p50_us / 1e3:.2f} / {s.latency_p99_us / 1e3:.2f} (absolute)"
            if direct
            else f"{row.added_p50_ms:+.2f} / {row.added_p99_ms:+.2f}"
        )
        ttft = f"{s.ttft_p50_ms:.2f} (absolute)" if direct else f"{row.added_ttft_ms:+.2f}"
        later = f"{s.later_p99_us / 1e3:.2f}" if direct else f"{row.added_later_p99_ms:+.2f}"
        cpu = _num(s.cpu_us_per_chunk)
        if s.helper_us_per_chunk is not None:
            cpu += f" (+{s.helper_us_per_chunk:.1f} redis-server)"
        rss = _num(s.rss_peak / _MIB if s.rss_peak else None)
        lines.append(
            f"| {row.title} | {cpu} | {_num(s.kernel_us_per_chunk)} | {_num(row.x_nginx, 2)} "
            f"| {latency} | {later} | {ttft} | {rss} "
            f"| {_num(s.kib_per_stream)} | {s.worst_ok}/{s.streams} | {s.other_load:.0%} |"
        )
    return lines


def _capacity(results: Sequence[TargetResult], profile: Profile) -> list[str]:
    direct = next((r for r in results if r.target.kind is Kind.DIRECT), None)
    base = {s.streams: s.p99_us for s in direct.ramp} if direct else {}
    header = " | ".join(f"K={k}" for k in profile.ramp_streams)
    lines = [
        f"| target | largest K with p99 added < {profile.p99_limit_ms:g} ms | {header} |",
        "|---|---:|" + "---:|" * len(profile.ramp_streams),
    ]
    for r in results:
        if not r.ramp or r.target.kind is Kind.DIRECT:
            continue
        cells: list[str] = []
        for k in profile.ramp_streams:
            step = next((s for s in r.ramp if s.streams == k), None)
            if step is None:
                cells.append("")
                continue
            added = (step.p99_us - base.get(k, 0.0)) / 1e3
            failed = f" ({step.failed} failed)" if step.failed else ""
            cells.append(f"{added:+.2f}{failed}")
        passing = [s.streams for s in r.ramp if s.streams in base and not s.failed
                   and (s.p99_us - base[s.streams]) / 1e3 < profile.p99_limit_ms]  # fmt: skip
        top = max(passing, default=None)
        if top is None:
            verdict = f"< {profile.ramp_streams[0]}"
        elif top == profile.ramp_streams[-1]:
            verdict = f"≥ {top}"
        else:
            verdict = str(top)
        lines.append(f"| {r.target.title} | {verdict} | " + " | ".join(cells) + " |")
    if direct and direct.ramp:
        absolute = " | ".join(f"{s.p99_us / 1e3:.2f}" for s in direct.ramp)
        lines.append(f"| (direct: absolute p99 ms) | | {absolute} |")
    return lines


def _targets(results: Sequence[TargetResult], profile: Profile) -> list[str]:
    """The issue's targets, checked against this run's figures."""
    lines = ["| target | load | measured | limit | met |", "|---|---|---:|---:|:---:|"]
    for load in profile.loads:
        rows = rows_for(results, load)
        naive = next((r for r in rows if r.kind is Kind.NAIVE), None)
        for row in rows:
            if row.kind is not Kind.SSERELAY:
                continue
            cpu = row.s.cpu_us_per_chunk
            if row.nginx_budget is not None and row.x_nginx is not None:
                ok = row.x_nginx <= row.nginx_budget
                lines.append(
                    f"| {row.title}: CPU per chunk vs nginx | {load.label} | {row.x_nginx:.2f}x"
                    f"{_spread(row.x_nginx_by_round)} | ≤ {row.nginx_budget:g}x "
                    f"| {'yes' if ok else 'no'} |"
                )
            naive_cpu = naive.s.cpu_us_per_chunk if naive else None
            if cpu and naive_cpu:
                ratio = naive_cpu / cpu
                lines.append(
                    f"| {row.title}: CPU per chunk vs naive | {load.label} | {ratio:.1f}x less"
                    f"{_spread(row.x_naive_by_round, 1)} | ≥ {_NAIVE_FACTOR}x less "
                    f"| {'yes' if ratio >= _NAIVE_FACTOR else 'no'} |"
                )
            kib = row.s.kib_per_stream
            if kib is not None:
                lines.append(
                    f"| {row.title}: memory per active stream | {load.label} | {kib:.1f} KiB "
                    f"| ≤ {_KIB_PER_STREAM_LIMIT} KiB "
                    f"| {'yes' if kib <= _KIB_PER_STREAM_LIMIT else 'no'} |"
                )
            if load is profile.loads[-1]:
                ok = row.added_p99_ms <= _P99_WITHIN_MS
                lines.append(
                    f"| {row.title}: p99 added latency | {load.label} | {row.added_p99_ms:+.2f} ms "
                    f"| ≤ {_P99_WITHIN_MS:g} ms | {'yes' if ok else 'no'} |"
                )
    return lines


def _idle_log_notes(results: Sequence[TargetResult]) -> list[str]:
    """A Redis row whose redis-server did no work measured a relay that kept no log there."""
    notes = []
    for r in results:
        shares = [s.helper_us_per_chunk for s in r.summaries]
        if shares and all(v is not None and v < 0.5 for v in shares):
            notes.append(
                f"Note: under *{r.target.title}* redis-server did (almost) no work, so that "
                "endpoint did not keep its stream in Redis in this revision."
            )
    return [*notes, ""] if notes else []


def _machine(machine: Machine) -> str:
    return (
        f"{machine.cores} cores ({machine.cpu}), {machine.ram_gib:.0f} GiB RAM, "
        f"Linux {machine.kernel}, Python {machine.python}, {machine.nginx or 'no nginx'}; "
        f"run {machine.date}, sserelay at {machine.revision or 'an unknown revision'}"
    )


def render(
    results: Sequence[TargetResult],
    profile_name: str,
    profile: Profile,
    machine: Machine,
    plot: str | None,
) -> str:
    out = [
        "# Benchmarks",
        "",
        f"`make bench` (`python -m sserelay.bench --profile {profile_name}`). Machine: "
        f"{_machine(machine)}.",
        "",
        "**The machine is shared** with other engineers' test runs, which come and go "
        "during a run: absolute figures drift from run to run, so compare rows within one "
        "run (the issue's targets are ratios to nginx in the same run). The *other load* "
        "column is the share of all cores used during a run by processes outside the "
        "benchmark; where it is high, latency figures measure the machine's run queue more "
        "than the relay. CPU per chunk, counted per process, is far less disturbed.",
        "",
        "How it measures:",
        "",
        "- The upstream (`sserelay.bench.stamped_upstream`, its own process) sends the "
        "fake OpenAI upstream's exact bytes, each token being its send time, "
        "`time.time_ns()`, from a bare asyncio protocol (one timer callback per token). The "
        "load generator (`sserelay.bench.loadgen`, its own process, a bare asyncio protocol "
        "on httptools) opens K streams, each on its own connection, their starts spread "
        "evenly over one token interval (as independent users' streams are; started in one "
        "instant, K paced streams would send synchronised bursts of K), and takes for each "
        "token receive time minus stamp. Both keep their garbage collector out of the "
        "measured load, and together cost about 65 µs of CPU per token, which the relay's "
        "share of the two cores is spared (see docs/decisions.md, \"The benchmark's own "
        "processes\"). For /v1/streams (POST starts "
        "the generation, a GET follows it) the GET goes on the POST's connection once its "
        "answer is read, as a browser's page and an HTTP client's pool send them "
        "(keep-alive), and the clock of a token starts at the later of its "
        "stamp and the moment the GET is sent: tokens made before anyone asked for them "
        "arrive in the GET's first read, and are not late.",
        "- *Added* latency and time to first token (TTFT) are a target's percentile minus the "
        "direct run's under the same load; they can come out negative when the machine was "
        "busier during the direct run.",
        "- *p99 once flowing* counts only the tokens made after their stream's first bytes "
        "reached the client. It leaves out those that waited for the request itself to be "
        "served (behind the other streams' starts), which for /v1/streams are all the tokens "
        "made before its GET was answered, replayed from the log then.",
        "- Relay CPU is the CPU time of the relay's own processes only (nginx: its one "
        "worker; sserelay and the Flask baseline: the server process), over the run, divided "
        "by the tokens delivered, so per-stream costs (connections, request parsing) are "
        "spread over its 100 tokens. It is the scheduler's count in nanoseconds "
        "(`/proc/<pid>/task/*/schedstat`) where every thread lived through the run; "
        "utime+stime from `/proc/<pid>/stat`, in 10 ms clock ticks, for the Flask baseline, "
        "whose per-request threads take their nanoseconds with them (ticks were ~1% of "
        "nginx's whole CPU in a 100 x 100 run). The upstream, the load "
        "generator and redis-server are not counted; redis-server's share, counted the "
        "same way, is shown beside the Redis rows. *Of it, in the kernel* is the stime "
        "part (split as the ticks split): the reads, writes and polls on the sockets, "
        "much the same work for every relay, so it bounds how close to nginx any relay "
        "doing them can come.",
        "- Memory per active stream is (peak RSS under load - RSS before) / K; all K streams "
        "are open at once.",
        f"- Every target runs in a fresh process for each of {profile.repeats} run(s) per "
        "load, after a 2-stream warm-up. The runs go in rounds, each "
        "round every target once, so a change in what else the machine runs falls on all "
        "targets alike. CPU and memory figures are the median over the runs; latency "
        "figures the best run's, for direct as for the rest, since other processes' bursts "
        "only ever add delay. The capacity ramp runs last, in one more process per target.",
        "- The naive baseline (`sserelay.bench.naive_relay`) is the tutorial's Flask code on "
        "the openai SDK, served as the tutorial serves it: `flask run --with-threads` "
        "(werkzeug's threaded server, one thread per request).",
        "- nginx is Debian's, one worker process, `proxy_buffering off`, HTTP/1.1 keep-alive "
        "to the upstream (`sserelay.bench.nginx`).",
        "",
    ]
    if plot:
        out += [f"![relay CPU per chunk and p99 added latency per target]({plot})", ""]
    for load in profile.loads:
        out += [f"## {load.label}", "", *_load_table(rows_for(results, load)), ""]
    out += [
        f"## Capacity: largest K with p99 added latency under {profile.p99_limit_ms:g} ms",
        "",
        f"Streams of {profile.ramp_tokens} tokens at {profile.ramp_rate:g} tokens/s, in one "
        "process per target; K rises until a step passes the limit or a stream fails, after "
        "one retry (cells: p99 added latency in ms; direct's steps are the better of two "
        "runs). "
        f"The search stops at {profile.ramp_streams[-1]}: past that the upstream and the "
        "load generator, Python on the same cores, saturate before the relays do.",
        "",
        *_capacity(results, profile),
        "",
        "## Against the issue's targets",
        "",
        "CPU and memory are judged from this run's medians; beside a ratio to nginx, its "
        "lowest and highest within one round (a target's run over nginx's run of the same "
        "round) show how far the machine moved it. The p99 latency target (within "
        "2 ms of direct) can only be judged where *other load* was near zero: on a busy "
        "shared machine it measures the run queue.",
        "",
        *_targets(results, profile),
        "",
        *_idle_log_notes(results),
    ]
    failed = [f"- {r.target.title}, {s.load.label}, {failure}"
              for r in results for s in r.summaries for failure in s.failures]
    if failed:
        out += ["## Streams that failed", "",
                "What the load generator saw end a stream early (*streams ok* counts them).",
                "", *failed, ""]
    missing = [r for r in results if r.unavailable]
    if missing:
        out += ["## Not measured in this run", ""]
        out += [f"- {r.target.title}: {r.unavailable}" for r in missing]
    return "\n".join(out).rstrip("\n") + "\n"


def write_report(
    results: Sequence[TargetResult],
    profile_name: str,
    profile: Profile,
    machine: Machine,
    out_dir: Path,
) -> Path:
    """Write benchmarks.md (and benchmarks.png when matplotlib is installed) into out_dir."""
    from sserelay.bench.plot import write_plot

    out_dir.mkdir(parents=True, exist_ok=True)
    plot = write_plot(results, profile, out_dir / "benchmarks.png")
    path = out_dir / "benchmarks.md"
    text = render(results, profile_name, profile, machine, plot.name if plot else None)
    if plot is None:
        text += "\n(No plot: matplotlib is not installed.)\n"
    path.write_text(text, encoding="utf-8")
    return path
