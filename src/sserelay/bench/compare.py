"""``python -m sserelay.bench.compare``: one target under one load, alternated between source
trees, the A/B behind every hot-path change.

    python -m sserelay.bench.compare streams-memory 500x100@20 --runs 3 --against HEAD~1

Each run starts a fresh relay (as the benchmark does) for each tree in turn, this checkout
first, and prints the relay's CPU per relayed chunk, its kernel share, the write and read
system calls per chunk (/proc/<pid>/io) and the latency the load generator saw. The summary
gives each tree's median. Alternating matters more than the number of runs: the machine's
speed drifts by more than most single changes save (docs/decisions.md, "Per-request work,
fourth round"), and a drift then falls on both trees alike.

`--instructions` runs each relay under valgrind's callgrind instead, counting the
instructions its user space executes during the load (toggled on after the warm-up), per
chunk: deterministic where the machine's speed is not, so one run per tree decides a change
of 1%, but the kernel's part and cache misses are not in it, and the relay runs ~50x slower
(keep the load light, e.g. 20x60@20). With `--split M` each tree is also counted with
streams of M tokens, and the two counts give what a stream costs besides its chunks and
what a chunk costs (a line through them): which of the two a change moves, and how much a
stream's requests weigh against its relaying (docs/decisions.md, "Where a stream's
instructions are, counted"). Streams differ by tens of thousands of instructions (a
connection reused or made, a collection), so split with 50 streams or more: at 10 the split
of the same relay moved between 1k and 8k a chunk.

`--calls` runs the relay under `sserelay.bench.calls`, which counts every Python function
it enters and every C function it calls during the load: exact (two runs of one tree differ
by a log line's flush), a few times slower rather than callgrind's fifty, and by function,
so it says which calls a change took away; `--split` works with it as with instructions and
lists a stream's calls and a chunk's by function (docs/decisions.md, "A sixth full run").
A call's cost varies (a `len` against a request's handler), so it counts work, not time.

`--samples` runs the relay as usual and samples where its CPU time goes with `perf record`
(`cpu-clock` at 4 kHz, switched on for the load only), then prints each tree's µs per chunk
by shared object and by function, kernel included: what instructions cannot show, a
chunk's cost in cache misses and system calls (docs/decisions.md, "Three full runs of the
same relay"). The sampling costs the relay some CPU itself: compare trees that both ran
under it, not with runs without it.

`--against REV` checks REV out into a temporary git worktree and runs the relay from its
`src/`. The C extension is taken from this checkout when `_speedups.c` is the same at REV;
otherwise build it in a checkout of REV (`pip install -e .` there) and pass that checkout
with `--against-dir`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from sserelay.bench.figures import Measurement
from sserelay.bench.loadgen import LoadResult
from sserelay.bench.procstat import io_calls
from sserelay.bench.profiles import Load
from sserelay.bench.runner import measure, raise_fd_limit, run_loadgen, warm_up
from sserelay.bench.targets import TARGETS, BenchEnv, Kind, Target, TargetUnavailable, launch
from sserelay.testing.procs import ServerProcess

__all__ = ["Split", "main", "parse_load", "per_stream_and_chunk"]

_HERE = Path(__file__).resolve().parents[3]  # the checkout this module runs from
_SPEEDUPS = "src/sserelay/_speedups.c"
_LOAD = re.compile(r"(\d+)x(\d+)@(\d+(?:\.\d+)?)")
_CALLGRIND_STARTUP = 300.0  # seconds: the relay starts ~50x slower under valgrind
_PERF_HZ = 4000  # cpu-clock samples per second of the relay's CPU time
_PERF_ACK = 30.0  # seconds perf may take to answer a control command
_SYMBOLS = 25  # functions listed under --samples and --calls
_CALLS_SCRIPT = Path(__file__).resolve().with_name("calls.py")  # this checkout's, any tree
_CALLS_ACK = 30.0  # seconds the relay may take to answer a counting signal


class CompareError(Exception):
    """Something the user asked for that cannot be measured: said in words, exit status 2."""


@dataclass(frozen=True, slots=True)
class Tree:
    label: str
    src: Path | None  # None: this checkout, as installed


@dataclass(slots=True)
class Counted:
    tree: Tree
    instructions: int  # the relay's, during the load (callgrind)
    chunks: int
    ok: int
    streams: int
    unit = "instructions"  # what a Split of two counts says it splits

    @property
    def total(self) -> int:
        return self.instructions

    @property
    def figure(self) -> float:
        return self.instructions / max(1, self.chunks)  # per chunk

    @staticmethod
    def shown(figure: float, unit: bool = True) -> str:
        return f"{figure:,.0f}" + (" instructions per chunk" if unit else "")

    def text(self) -> str:
        return (f"{self.shown(self.figure)} ({self.instructions:,} over {self.chunks:,} "
                f"chunks), {self.ok}/{self.streams} streams")  # fmt: skip


@dataclass(slots=True)
class Called:
    """The relay's function calls during the load (`sserelay.bench.calls`), by function:
    ("py", "file:line name") for a Python function entered, ("C", name) for a C call."""

    tree: Tree
    calls: dict[tuple[str, str], int]
    chunks: int
    ok: int
    streams: int
    unit = "calls"

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def python(self) -> int:
        return sum(n for (kind, _), n in self.calls.items() if kind == "py")

    @property
    def figure(self) -> float:
        return self.total / max(1, self.chunks)  # per chunk

    @staticmethod
    def shown(figure: float, unit: bool = True) -> str:
        return f"{figure:,.2f}" + (" calls per chunk" if unit else "")

    def text(self) -> str:
        chunks = max(1, self.chunks)
        return (f"{self.shown(self.figure)} ({self.python / chunks:,.2f} Python function "
                f"entries, {(self.total - self.python) / chunks:,.2f} C calls; "
                f"{self.total:,} over {self.chunks:,} chunks), {self.ok}/{self.streams} "
                f"streams")  # fmt: skip


@dataclass(slots=True)
class Run:
    tree: Tree
    cpu_us: float
    kernel_us: float
    writes: float  # write system calls per chunk
    reads: float
    p99_ms: float
    ok: int
    streams: int
    chunks: int
    helper_us: float | None = None  # redis-server's CPU per chunk, for the Redis targets

    @property
    def figure(self) -> float:
        return self.cpu_us

    @staticmethod
    def shown(figure: float, unit: bool = True) -> str:
        return f"{figure:7.2f} µs CPU per chunk" if unit else f"{figure:.2f}"

    def text(self) -> str:
        helper = "" if self.helper_us is None else f" (+{self.helper_us:.2f} redis-server)"
        return (f"{self.shown(self.cpu_us)} ({self.kernel_us:.2f} in the kernel){helper}, "
                f"{self.writes:.3f} writes and {self.reads:.3f} reads per chunk, "
                f"p99 {self.p99_ms:.2f} ms, {self.ok}/{self.streams} streams")  # fmt: skip


@dataclass(slots=True)
class Sampled:
    """A `Run` under `perf record`, with where its CPU went."""

    tree: Tree
    run: Run
    symbols: dict[tuple[str, str], float]  # (shared object, function): µs per chunk

    @property
    def figure(self) -> float:
        return self.run.cpu_us

    @staticmethod
    def shown(figure: float, unit: bool = True) -> str:
        return Run.shown(figure, unit)

    def text(self) -> str:
        return self.run.text()


class _Result(Protocol):
    tree: Tree

    @property
    def figure(self) -> float: ...

    @staticmethod
    def shown(figure: float, unit: bool = True) -> str: ...

    def text(self) -> str: ...


_R = TypeVar("_R", bound=_Result)


def parse_load(text: str) -> Load:
    """`KxN@R`: K concurrent streams of N tokens at R tokens/s each."""
    found = _LOAD.fullmatch(text.strip())
    if found is None:
        raise CompareError(f"{text!r} is not a load: write KxN@R, e.g. 500x100@20 "
                           "(500 streams of 100 tokens at 20 tokens/s)")  # fmt: skip
    streams, tokens, rate = int(found[1]), int(found[2]), float(found[3])
    if not streams or not tokens or rate <= 0:
        raise CompareError(f"{text!r}: streams, tokens and rate must all be above 0")
    return Load(streams, tokens, rate)


def _target(key: str) -> Target:
    for target in TARGETS:
        if target.key == key:
            return target
    keys = ", ".join(t.key for t in TARGETS if t.kind is not Kind.DIRECT)
    raise CompareError(f"no target {key!r}; one of: {keys}")


def _checked_src(root: Path) -> Path:
    src = root / "src"
    if not (src / "sserelay" / "__init__.py").is_file():
        raise CompareError(f"{root} is not an sserelay checkout (no src/sserelay)")
    if not list((src / "sserelay").glob("_speedups*.so")):
        raise CompareError(f"{src / 'sserelay'} has no built _speedups extension: the relay "
                           "would measure the Python fallbacks; build it there "
                           "(pip install -e .)")  # fmt: skip
    return src


@contextlib.contextmanager
def _worktree(rev: str) -> Iterator[Path]:
    """REV checked out in a temporary git worktree, with this checkout's C extension."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(_HERE), *args],
                              capture_output=True, text=True, check=False)  # fmt: skip

    if git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode != 0:
        raise CompareError(f"{rev!r} is not a revision of the checkout at {_HERE}")
    if git("diff", "--quiet", rev, "--", _SPEEDUPS).returncode != 0:
        raise CompareError(
            f"{_SPEEDUPS} differs at {rev}: build it in a checkout of {rev} "
            "(pip install -e .) and pass that checkout with --against-dir"
        )
    built = list((_HERE / "src" / "sserelay").glob("_speedups*.so"))
    if not built:
        raise CompareError("this checkout has no built _speedups extension to share")
    path = Path(tempfile.mkdtemp(prefix="sserelay-compare-")) / "tree"
    added = git("worktree", "add", "--detach", str(path), rev)
    if added.returncode != 0:
        raise CompareError(f"git worktree add failed: {added.stderr.strip()}")
    try:
        for extension in built:
            shutil.copy2(extension, path / "src" / "sserelay" / extension.name)
        yield path
    finally:
        git("worktree", "remove", "--force", str(path))
        shutil.rmtree(path.parent, ignore_errors=True)


def _run(target: Target, tree: Tree, env: BenchEnv, load: Load,
         during: Callable[[list[int]], contextlib.AbstractContextManager[None]] | None = None,
         ) -> Run:  # fmt: skip
    """One measured load on a fresh relay; `during(pids)` wraps the load itself."""
    target = _with_tree(target, tree)
    with launch(target, env) as running:
        warm_up(target, running)
        pids = running.pids()
        with during(pids) if during is not None else contextlib.nullcontext():
            reads_before, writes_before = io_calls(pids)
            m: Measurement = measure(target, running, env, load)
            reads_after, writes_after = io_calls(pids)
    reads, writes = reads_after - reads_before, writes_after - writes_before
    chunks = max(1, m.result.chunks)
    return Run(
        tree,
        cpu_us=m.per_chunk_us(m.cpu_s) or 0.0,
        kernel_us=m.per_chunk_us(m.kernel_cpu_s) or 0.0,
        writes=writes / chunks,
        reads=reads / chunks,
        p99_ms=m.result.latency_us.get("p99", 0.0) / 1000,
        ok=m.result.ok,
        streams=m.result.streams,
        chunks=m.result.chunks,
        helper_us=m.per_chunk_us(m.helper_cpu_s),
    )


def _sample(target: Target, tree: Tree, env: BenchEnv, load: Load) -> Sampled:
    """`_run` with the relay's processes sampled by perf during the load."""
    with tempfile.TemporaryDirectory(prefix="sserelay-perf-") as scratch:
        data = Path(scratch) / "perf.data"
        run = _run(target, tree, env, load, lambda pids: _perf_record(data, pids))
        counts = _perf_counts(data)
    per_sample = 1e6 / _PERF_HZ / max(1, run.chunks)  # µs of CPU per chunk
    return Sampled(tree, run, {key: n * per_sample for key, n in counts.items()})


@contextlib.contextmanager
def _perf_record(data: Path, pids: list[int]) -> Iterator[None]:
    """perf attached to `pids` from the start, sampling only inside the block: it starts
    disabled and is switched on and off through its control FIFO, each switch acknowledged,
    as callgrind_control toggles callgrind."""
    fifos = Path(tempfile.mkdtemp(prefix="sserelay-perfctl-"))
    control, ack = fifos / "control", fifos / "ack"
    os.mkfifo(control)
    os.mkfifo(ack)
    # Read-write opens do not wait for the other end; perf opens its ends as it starts.
    control_fd, ack_fd = os.open(control, os.O_RDWR), os.open(ack, os.O_RDWR)
    perf = subprocess.Popen(
        ["perf", "record", "--quiet", "-e", "cpu-clock", "-F", str(_PERF_HZ), "-D", "-1",
         f"--control=fifo:{control},{ack}", "-p", ",".join(map(str, pids)), "-o", str(data)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip

    def tell(command: str) -> None:
        os.write(control_fd, f"{command}\n".encode())
        for _ in range(int(_PERF_ACK / 0.1)):  # perf may have exited instead (no permission)
            if select.select([ack_fd], [], [], 0.1)[0]:
                if b"ack" in os.read(ack_fd, 64):
                    return
                break
            if perf.poll() is not None:
                break
        perf.kill()
        perf.wait()
        raise CompareError(f"perf did not acknowledge {command!r}: {_stderr_tail(perf)}")

    try:
        tell("enable")
        yield
        tell("disable")
        perf.send_signal(signal.SIGINT)  # perf writes its file, then dies of the signal
        try:
            perf.wait(timeout=_PERF_ACK)
        except subprocess.TimeoutExpired:
            perf.kill()
        if perf.returncode not in (0, -signal.SIGINT) or not data.is_file():
            raise CompareError(f"perf record failed: {_stderr_tail(perf)}")
    finally:
        if perf.poll() is None:
            perf.kill()
            perf.wait()
        os.close(control_fd)
        os.close(ack_fd)
        shutil.rmtree(fifos, ignore_errors=True)


def _stderr_tail(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None or process.stderr is None:
        return "(still running)"
    return process.stderr.read().decode(errors="replace").strip()[-300:] or "(nothing said)"


def _perf_counts(data: Path) -> collections.Counter[tuple[str, str]]:
    """Samples per (shared object, function) in a perf.data; a function perf could not name
    counts under its object as `?`."""
    done = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso,sym",
         "-F", "sample,dso,sym", "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise CompareError(f"perf report failed: {done.stderr.strip()[-300:]}")
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in done.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        symbol = parts[2].strip()
        if re.fullmatch(r"\[.\] 0x[0-9a-f]+", symbol):
            symbol = "[.] ?"
        counts[parts[1], symbol] += int(parts[0])
    return counts


def _with_tree(target: Target, tree: Tree) -> Target:
    if tree.src is None:
        return target
    return dataclasses.replace(
        target, relay_env=(*target.relay_env, ("PYTHONPATH", str(tree.src)))
    )


def _load_counted(target: Target, env: BenchEnv, load: Load, on: Callable[[int], None],
                  off: Callable[[int], None]) -> LoadResult:  # fmt: skip
    """The load on a fresh relay, warmed up twice (the interpreter's specialised code
    settles), its counting switched `on(pid)` just before and `off(pid)` just after."""
    with launch(target, env) as running:
        warm_up(target, running)
        warm_up(target, running)
        pid = running.pids()[0]
        on(pid)
        result = run_loadgen(target.request(running.url, load), load)
        off(pid)
    return result


def _count(target: Target, tree: Tree, env: BenchEnv, load: Load) -> Counted:
    """The relay under callgrind, instrumented only while the load runs."""
    with tempfile.TemporaryDirectory(prefix="sserelay-callgrind-") as scratch:
        out = Path(scratch) / "callgrind.out"
        wrapped = dataclasses.replace(
            _with_tree(target, tree),
            relay_wrapper=("valgrind", "--tool=callgrind", "--instr-atstart=no",
                           f"--callgrind-out-file={out}"),
            startup_timeout=_CALLGRIND_STARTUP,
        )  # fmt: skip

        def off(pid: int) -> None:
            _callgrind_control("-i", "off", str(pid))
            _callgrind_control("-d", str(pid))  # the counts so far, to a file of their own

        result = _load_counted(wrapped, env, load,
                               lambda pid: _callgrind_control("-i", "on", str(pid)), off)
        totals = [int(line.split()[1]) for part in Path(scratch).glob("callgrind.out*")
                  for line in part.read_text().splitlines() if line.startswith("totals:")]
        if not totals:
            raise CompareError("callgrind wrote no counts (did the relay start under it?)")
    return Counted(tree, sum(totals), result.chunks, result.ok, result.streams)


def _call_count(target: Target, tree: Tree, env: BenchEnv, load: Load) -> Called:
    """The relay under `sserelay.bench.calls`, counting only while the load runs."""
    with tempfile.TemporaryDirectory(prefix="sserelay-calls-") as scratch:
        out = Path(scratch) / "calls.json"
        wrapped = dataclasses.replace(
            _with_tree(target, tree),
            relay_wrapper=(sys.executable, str(_CALLS_SCRIPT), str(out), "--"),
        )

        def on(pid: int) -> None:
            os.kill(pid, signal.SIGUSR1)
            _wait_for(out.with_name(out.name + ".on"), "switch its call counting on")

        def off(pid: int) -> None:
            os.kill(pid, signal.SIGUSR2)
            _wait_for(out, "write its call counts")

        result = _load_counted(wrapped, env, load, on, off)
        counts = json.loads(out.read_text())
    calls: dict[tuple[str, str], int] = {}
    for filename, line, name, n in counts["python"]:
        key = ("py", f"{_short_path(filename)}:{line} {name}")
        calls[key] = calls.get(key, 0) + n
    for name, n in counts["c"]:
        calls["C", name] = calls.get(("C", name), 0) + n
    return Called(tree, calls, result.chunks, result.ok, result.streams)


def _short_path(filename: str) -> str:
    """A module's file from its package on: sserelay/web/guard.py, asyncio/events.py."""
    parts = Path(filename).parts
    for marker in ("site-packages", "src"):
        if marker in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(marker):])
    return "/".join(parts[-2:])


def _wait_for(path: Path, what: str) -> None:
    for _ in range(int(_CALLS_ACK / 0.05)):
        if path.exists():
            return
        time.sleep(0.05)
    raise CompareError(f"the relay did not {what} within {_CALLS_ACK:.0f} s")


def _callgrind_control(*args: str) -> None:
    done = subprocess.run(["callgrind_control", *args], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise CompareError(f"callgrind_control {' '.join(args)} failed: "
                           f"{(done.stderr or done.stdout).strip()[-300:]}")  # fmt: skip


@contextlib.contextmanager
def _upstream() -> Iterator[BenchEnv]:
    raise_fd_limit()
    upstream_argv = [sys.executable, "-m", "sserelay.bench.stamped_upstream", "--port", "{port}"]
    with ServerProcess(upstream_argv) as upstream:
        yield BenchEnv(upstream)


def _alternate(target: Target, load: Load, trees: Sequence[Tree], runs: int,
               one: Callable[[Target, Tree, BenchEnv, Load], _R], what: str) -> list[_R]:
    """`runs` rounds, each tree once per round in the order given; prints as it goes, then
    each tree's median."""
    results: list[_R] = []
    with _upstream() as env:
        for round_index in range(runs):
            for tree in trees:
                result = one(target, tree, env, load)
                print(f"round {round_index + 1} {tree.label:>12}: {result.text()}", flush=True)
                results.append(result)
    print(f"\n{target.title}, {load.label}: {what}medians of {runs} run(s)")
    for tree in trees:
        mine = [r for r in results if r.tree is tree]
        figure = statistics.median(r.figure for r in mine)
        print(f"{tree.label:>12}: {mine[0].shown(figure)} "
              f"({', '.join(r.shown(r.figure, unit=False) for r in mine)})")  # fmt: skip
    return results


def compare(target: Target, load: Load, trees: Sequence[Tree], runs: int) -> list[Run]:
    """The relay's CPU per chunk, alternating the trees."""
    return _alternate(target, load, trees, runs, _run, "")


def sample(target: Target, load: Load, trees: Sequence[Tree], runs: int) -> list[Sampled]:
    """`compare` under perf, then where each tree's CPU went per chunk: by shared object,
    then the functions that differ most between the trees (with one tree, the largest)."""
    results = _alternate(target, load, trees, runs, _sample, "")
    symbols = {tree.label: [r.symbols for r in results if r.tree is tree] for tree in trees}
    by_object = {label: [_by_object(run) for run in tree_runs]
                 for label, tree_runs in symbols.items()}  # fmt: skip
    print(f"\nwhere the relay's CPU went, µs per chunk (perf cpu-clock samples at {_PERF_HZ} "
          f"Hz, medians of {runs} run(s)):")  # fmt: skip
    _print_table("by shared object", by_object, None)
    _print_table("by function", symbols, _SYMBOLS)
    return results


def _by_object(symbols: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """One run's functions summed by shared object (keyed as (object, ""))."""
    objects: dict[tuple[str, str], float] = collections.defaultdict(float)
    for (shared_object, _), us in symbols.items():
        objects[shared_object, ""] += us
    return objects


def _print_table(title: str, runs_by_tree: dict[str, list[dict[tuple[str, str], float]]],
                 top: int | None) -> None:  # fmt: skip
    labels = list(runs_by_tree)
    keys = {key for runs in runs_by_tree.values() for run in runs for key in run}
    medians = {label: {key: statistics.median(run.get(key, 0.0) for run in runs)
                       for key in keys}
               for label, runs in runs_by_tree.items()}  # fmt: skip
    first = medians[labels[0]]
    other = medians[labels[1]] if len(labels) > 1 else None
    if other is None:
        rows = sorted(keys, key=lambda key: -first[key])
    else:
        rows = sorted(keys, key=lambda key: (-abs(first[key] - other[key]), -first[key]))
    head = "".join(f"{label[:12]:>13}" for label in labels)
    print(f"\n  {title}:\n{head}" + (f"{'difference':>13}" if other is not None else ""))
    for key in rows[:top]:
        cells = "".join(f"{medians[label][key]:13.3f}" for label in labels)
        if other is not None:
            cells += f"{first[key] - other[key]:+13.3f}"
        print(f"{cells}  {' '.join(part for part in key if part)}")


def count(target: Target, load: Load, trees: Sequence[Tree], runs: int) -> list[Counted]:
    """`compare`, counting instructions instead of timing."""
    return _alternate(target, load, trees, runs, _count, "instructions per chunk, ")


def per_stream_and_chunk(short: Counted | Called, long: Counted | Called,
                         totals: tuple[float, float] | None = None) -> tuple[float, float]:
    """What a stream costs besides its chunks, and a chunk's, from two counts of the same
    streams at two lengths: each count per stream is `own + chunk x chunks a stream`. Of
    their totals, or of `totals` (one function's calls in each, say)."""
    if not short.streams or not long.streams:
        raise CompareError("a count without streams cannot be split")
    chunks_short, chunks_long = short.chunks / short.streams, long.chunks / long.streams
    if chunks_long == chunks_short:
        raise CompareError("both counts delivered as many chunks a stream: nothing to split "
                           "by (did the streams fail?)")  # fmt: skip
    total_short, total_long = (short.total, long.total) if totals is None else totals
    per_short, per_long = total_short / short.streams, total_long / long.streams
    chunk = (per_long - per_short) / (chunks_long - chunks_short)
    return per_short - chunk * chunks_short, chunk


@dataclass(slots=True)
class Split:
    """One tree's two counts, at two stream lengths, and what they give: what a stream costs
    besides its chunks (`own`) and what a chunk costs (`chunk`, the figure), in
    instructions or in calls."""

    tree: Tree
    lengths: tuple[int, int]  # tokens a stream in the two counts
    short: Counted | Called
    long: Counted | Called
    own: float
    chunk: float

    @property
    def figure(self) -> float:
        return self.chunk

    @staticmethod
    def shown(figure: float, unit: bool = True) -> str:
        return f"{figure:,.{2 if abs(figure) < 100 else 0}f}" + (" a chunk" if unit else "")

    def text(self) -> str:
        (short, long), counted = self.lengths, (self.short, self.long)
        return (f"{self.shown(self.own, unit=False)} {self.short.unit} a stream + "
                f"{self.shown(self.chunk)} ({short} tokens: {counted[0].text()}; {long} "
                f"tokens: {counted[1].text()})")  # fmt: skip


def split(target: Target, load: Load, tokens: int, trees: Sequence[Tree], runs: int,
          one: Callable[[Target, Tree, BenchEnv, Load], Counted | Called] = _count,
          ) -> list[Split]:  # fmt: skip
    """`one` (`_count` or `_call_count`) at the load's stream length and at `tokens`,
    alternating the trees, then each tree's median a chunk and a stream (besides its
    chunks); for calls, also by function."""
    short, long = sorted((load, dataclasses.replace(load, tokens=tokens)),
                         key=lambda each: each.tokens)  # fmt: skip

    def both(target: Target, tree: Tree, env: BenchEnv, _: Load) -> Split:
        counted = (one(target, tree, env, short), one(target, tree, env, long))
        return Split(tree, (short.tokens, long.tokens), *counted,
                     *per_stream_and_chunk(*counted))  # fmt: skip

    unit = "calls" if one is _call_count else "instructions"
    what = f"{short.tokens} against {long.tokens} tokens, {unit} a chunk, "
    results = _alternate(target, load, trees, runs, both, what)
    for tree in trees:
        own = statistics.median(r.own for r in results if r.tree is tree)
        print(f"{tree.label:>12}: {Split.shown(own, unit=False)} a stream besides its chunks")
    if one is _call_count:
        by_stream: dict[str, list[dict[tuple[str, str], float]]] = {t.label: [] for t in trees}
        by_chunk: dict[str, list[dict[tuple[str, str], float]]] = {t.label: [] for t in trees}
        for result in results:
            own_calls, chunk_calls = _split_by_function(result)
            by_stream[result.tree.label].append(own_calls)
            by_chunk[result.tree.label].append(chunk_calls)
        print(f"\ncalls by function (medians of {runs} run(s)):")
        _print_table("a stream's, besides its chunks", by_stream, _SYMBOLS)
        _print_table("a chunk's", by_chunk, _SYMBOLS)
    return results


def _split_by_function(result: Split) -> tuple[dict[tuple[str, str], float],
                                               dict[tuple[str, str], float]]:  # fmt: skip
    short, long = result.short, result.long
    assert isinstance(short, Called) and isinstance(long, Called)
    own: dict[tuple[str, str], float] = {}
    chunk: dict[tuple[str, str], float] = {}
    for key in short.calls.keys() | long.calls.keys():
        own[key], chunk[key] = per_stream_and_chunk(
            short, long, (short.calls.get(key, 0), long.calls.get(key, 0)))
    return own, chunk


def calls(target: Target, load: Load, trees: Sequence[Tree], runs: int) -> list[Called]:
    """`compare`, counting the relay's function calls instead of timing, then the functions
    whose calls per chunk differ most between the trees (with one tree, the most called)."""
    results = _alternate(target, load, trees, runs, _call_count, "calls per chunk, ")
    per_chunk = {tree.label: [{key: n / max(1, r.chunks) for key, n in r.calls.items()}
                              for r in results if r.tree is tree]
                 for tree in trees}  # fmt: skip
    print(f"\ncalls by function (medians of {runs} run(s)):")
    _print_table("per chunk", per_chunk, _SYMBOLS)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sserelay.bench.compare",
        description="Run one benchmark target under one load, alternating this checkout "
        "with other source trees, and print the relay's CPU per chunk for each.",
    )
    parser.add_argument("target", help="a target key, as for python -m sserelay.bench --targets")
    parser.add_argument("load", help="KxN@R: K streams of N tokens at R tokens/s, e.g. 500x100@20")
    parser.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--against", metavar="REV", help="a git revision to compare with")
    parser.add_argument(
        "--against-dir",
        metavar="DIR",
        type=Path,
        help="an sserelay checkout (with its C extension built) to compare with",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the relay's instructions under callgrind instead of timing its CPU "
        "(deterministic; needs valgrind; keep the load light, e.g. 20x60@20)",
    )
    parser.add_argument(
        "--calls",
        action="store_true",
        help="count the relay's Python function entries and C calls instead of timing its "
        "CPU, and list them by function (exact; the relay runs several times slower)",
    )
    parser.add_argument(
        "--split",
        metavar="TOKENS",
        type=int,
        help="with --instructions or --calls: also count streams of TOKENS tokens, and print "
        "what a stream costs besides its chunks and what a chunk costs (use 50 streams or "
        "more)",
    )
    parser.add_argument(
        "--samples",
        action="store_true",
        help="also sample where the relay's CPU goes with perf (needs perf; by shared object "
        "and by function, kernel included)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    try:
        target, load = _target(args.target), parse_load(args.load)
        if args.runs < 1:
            raise CompareError("--runs must be at least 1")
        if (args.against or args.against_dir) and target.kind is not Kind.SSERELAY:
            raise CompareError(f"{target.key} is not sserelay: there is no other tree to run")
        if args.instructions and target.kind is not Kind.SSERELAY:
            raise CompareError(f"{target.key} is not sserelay: --instructions counts sserelay's")
        if args.instructions and shutil.which("callgrind_control") is None:
            raise CompareError("--instructions needs valgrind (Debian: apt install valgrind)")
        if args.calls and target.kind is not Kind.SSERELAY:
            raise CompareError(f"{target.key} is not sserelay: --calls counts sserelay's")
        if sum((args.instructions, args.samples, args.calls)) > 1:
            raise CompareError("--instructions, --samples and --calls measure differently: "
                               "one at a time")  # fmt: skip
        if args.split is not None and not (args.instructions or args.calls):
            raise CompareError("--split splits counts: use it with --instructions or --calls")
        if args.split is not None and (args.split < 1 or args.split == load.tokens):
            raise CompareError(f"--split needs a stream length other than the load's "
                               f"({load.tokens} tokens), above 0")  # fmt: skip
        if args.samples and shutil.which("perf") is None:
            raise CompareError("--samples needs perf (Debian: apt install linux-perf)")
        with contextlib.ExitStack() as stack:
            trees = [Tree("this tree", None)]
            if args.against:
                trees.append(
                    Tree(args.against, _checked_src(stack.enter_context(_worktree(args.against))))
                )
            if args.against_dir:
                trees.append(
                    Tree(
                        args.against_dir.name or str(args.against_dir),
                        _checked_src(args.against_dir.resolve()),
                    )
                )
            if args.split is not None:
                split(target, load, args.split, trees, args.runs,
                      _call_count if args.calls else _count)  # fmt: skip
            else:
                measured = (count if args.instructions else sample if args.samples
                            else calls if args.calls else compare)  # fmt: skip
                measured(target, load, trees, args.runs)
    except (CompareError, TargetUnavailable) as exc:
        print(f"sserelay.bench.compare: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
