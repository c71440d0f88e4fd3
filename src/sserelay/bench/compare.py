"""``python -m sserelay.bench.compare``: one target under one load, alternated between source
trees, the A/B behind every hot-path change.

    python -m sserelay.bench.compare streams-memory 500x100@20 --runs 3 --against HEAD~1

Each run starts a fresh relay (as the benchmark does) for each tree in turn, this checkout
first, and prints the relay's CPU per relayed chunk, its kernel share, the write and read
system calls per chunk (/proc/<pid>/io) and the latency the load generator saw. The summary
gives each tree's median. Alternating matters more than the number of runs: the machine's
speed drifts by more than most single changes save (docs/decisions.md, "Per-request work,
fourth round"), and a drift then falls on both trees alike.

`--against REV` checks REV out into a temporary git worktree and runs the relay from its
`src/`. The C extension is taken from this checkout when `_speedups.c` is the same at REV;
otherwise build it in a checkout of REV (`pip install -e .` there) and pass that checkout
with `--against-dir`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sserelay.bench.figures import Measurement
from sserelay.bench.procstat import io_calls
from sserelay.bench.profiles import Load
from sserelay.bench.runner import measure, raise_fd_limit, warm_up
from sserelay.bench.targets import TARGETS, BenchEnv, Kind, Target, TargetUnavailable, launch
from sserelay.testing.procs import ServerProcess

__all__ = ["main", "parse_load"]

_HERE = Path(__file__).resolve().parents[3]  # the checkout this module runs from
_SPEEDUPS = "src/sserelay/_speedups.c"
_LOAD = re.compile(r"(\d+)x(\d+)@(\d+(?:\.\d+)?)")


class CompareError(Exception):
    """Something the user asked for that cannot be measured: said in words, exit status 2."""


@dataclass(frozen=True, slots=True)
class Tree:
    label: str
    src: Path | None  # None: this checkout, as installed


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


def _run(target: Target, tree: Tree, env: BenchEnv, load: Load) -> Run:
    if tree.src is not None:
        target = dataclasses.replace(
            target, relay_env=(*target.relay_env, ("PYTHONPATH", str(tree.src)))
        )
    with launch(target, env) as running:
        warm_up(target, running)
        pids = running.pids()
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
    )


def _line(run: Run) -> str:
    return (f"{run.tree.label:>12}: {run.cpu_us:7.2f} µs CPU per chunk ({run.kernel_us:.2f} in "
            f"the kernel), {run.writes:.3f} writes and {run.reads:.3f} reads per chunk, "
            f"p99 {run.p99_ms:.2f} ms, {run.ok}/{run.streams} streams")  # fmt: skip


def compare(target: Target, load: Load, trees: Sequence[Tree], runs: int) -> list[Run]:
    """`runs` rounds, each tree once per round in the order given; prints as it goes."""
    raise_fd_limit()
    results: list[Run] = []
    upstream_argv = [sys.executable, "-m", "sserelay.bench.stamped_upstream", "--port", "{port}"]
    with ServerProcess(upstream_argv) as upstream:
        env = BenchEnv(upstream)
        for round_index in range(runs):
            for tree in trees:
                run = _run(target, tree, env, load)
                print(f"round {round_index + 1} {_line(run)}", flush=True)
                results.append(run)
    print(f"\n{target.title}, {load.label}: medians of {runs} run(s)")
    for tree in trees:
        mine = [r for r in results if r.tree is tree]
        cpu = statistics.median(r.cpu_us for r in mine)
        print(f"{tree.label:>12}: {cpu:7.2f} µs CPU per chunk "
              f"({', '.join(f'{r.cpu_us:.2f}' for r in mine)})")  # fmt: skip
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
    args = parser.parse_args(argv)  # fmt: skip
    try:
        target, load = _target(args.target), parse_load(args.load)
        if args.runs < 1:
            raise CompareError("--runs must be at least 1")
        if (args.against or args.against_dir) and target.kind is not Kind.SSERELAY:
            raise CompareError(f"{target.key} is not sserelay: there is no other tree to run")
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
            compare(target, load, trees, args.runs)
    except (CompareError, TargetUnavailable) as exc:
        print(f"sserelay.bench.compare: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
