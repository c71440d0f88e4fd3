"""`python -m sserelay.bench.compare`: one target, one load, this checkout alternated with
another tree. Real processes (upstream, relays, load generator); no timing asserts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import sserelay.bench.calls
from sserelay.bench.compare import CompareError, Counted, Tree, parse_load, per_stream_and_chunk
from sserelay.bench.profiles import Load

calls_script = Path(sserelay.bench.calls.__file__)

pytestmark = pytest.mark.timeout(300)

_FIGURES = (
    r"\d+\.\d\d µs CPU per chunk \(\d+\.\d\d in the kernel\), \d+\.\d{3} writes and "
    r"\d+\.\d{3} reads per chunk, p99 \d+\.\d\d ms, 2/2 streams"
)


def _compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sserelay.bench.compare", *args],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


def test_compare_alternates_this_tree_with_a_revision_and_prints_each_median() -> None:
    """Each round runs this checkout, then the revision (from a temporary worktree, removed
    afterwards); the summary has a median for each."""
    worktrees = subprocess.run(
        ["git", "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    done = _compare("article", "2x3@50", "--runs", "2", "--against", "HEAD")
    assert done.returncode == 0, done.stderr[-3000:]
    rounds = [line for line in done.stdout.splitlines() if line.startswith("round ")]
    assert [line.split(":")[0].split() for line in rounds] == [
        ["round", "1", "this", "tree"],
        ["round", "1", "HEAD"],
        ["round", "2", "this", "tree"],
        ["round", "2", "HEAD"],
    ]
    assert all(re.search(_FIGURES, line) for line in rounds), rounds
    summary = done.stdout.split("medians of 2 run(s)\n", 1)[1]
    assert re.search(r"this tree: +\d+\.\d\d µs CPU per chunk \(\d+\.\d\d, \d+\.\d\d\)", summary)
    assert re.search(r"HEAD: +\d+\.\d\d µs CPU per chunk \(\d+\.\d\d, \d+\.\d\d\)", summary)
    after = subprocess.run(
        ["git", "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert after == worktrees


def test_compare_counts_the_relays_instructions_per_chunk_under_callgrind() -> None:
    """--instructions runs the relay under callgrind, counting only during the load (not
    its start or warm-up): a count per chunk for each run and a median."""
    done = _compare("openai", "2x5@20", "--runs", "1", "--instructions")
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("round 1"))
    found = re.search(r"this tree: ([\d,]+) instructions per chunk \(([\d,]+) over 10 "
                      r"chunks\), 2/2 streams", line)  # fmt: skip
    assert found, line
    per_chunk, total = (int(found[i].replace(",", "")) for i in (1, 2))
    assert per_chunk == round(total / 10)
    # A chunk and its share of two requests: thousands of instructions, not the millions
    # start-up costs, had the counting begun before the load.
    assert 1_000 < per_chunk < 2_000_000, line
    assert re.search(r"this tree: [\d,]+ instructions per chunk \([\d,]+\)$",
                     done.stdout.split("medians of 1 run(s)\n", 1)[1].strip())  # fmt: skip


def test_compare_splits_instruction_counts_into_a_streams_own_and_a_chunks() -> None:
    """--split M counts each tree again with streams of M tokens; each round says what a
    stream costs besides its chunks and what a chunk costs, from its two counts, and the
    summary gives their medians. (With two streams the split itself is noise, tens of
    thousands of instructions from stream to stream: what is pinned is that it is the two
    printed counts' split.)"""
    done = _compare("openai", "2x3@50", "--runs", "1", "--instructions", "--split", "30")
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("round 1"))
    found = re.search(r"this tree: (-?[\d,]+) instructions a stream \+ (-?[\d,]+) a chunk "
                      r"\(3 tokens: [\d,]+ instructions per chunk \(([\d,]+) over 6 chunks\), "
                      r"2/2 streams; 30 tokens: [\d,]+ instructions per chunk \(([\d,]+) over "
                      r"60 chunks\), 2/2 streams\)", line)  # fmt: skip
    assert found, line
    own, chunk, short, long = (int(found[i].replace(",", "")) for i in range(1, 5))
    assert abs(own + chunk * 3 - short / 2) <= 2 + 3, line
    assert abs(own + chunk * 30 - long / 2) <= 2 + 30, line
    summary = done.stdout.split("medians of 1 run(s)\n", 1)[1].strip().splitlines()
    assert [line.strip() for line in summary] == [
        f"this tree: {chunk:,} a chunk ({chunk:,})",
        f"this tree: {own:,} a stream besides its chunks",
    ], summary


def test_a_split_solves_a_stream_as_its_own_cost_plus_a_cost_per_chunk() -> None:
    tree = Tree("t", None)
    # 2 streams, each 1,000 instructions of its own and 10 a chunk: 5 and 20 chunks each.
    short = Counted(tree, instructions=2 * (1_000 + 10 * 5), chunks=10, ok=2, streams=2)
    long = Counted(tree, instructions=2 * (1_000 + 10 * 20), chunks=40, ok=2, streams=2)
    assert per_stream_and_chunk(short, long) == (1_000, 10)
    assert per_stream_and_chunk(long, short) == (1_000, 10)
    # One function's calls in each count, split the same way: 3 a stream and 1 a chunk.
    assert per_stream_and_chunk(short, long, (2 * (3 + 5), 2 * (3 + 20))) == (3, 1)
    with pytest.raises(CompareError, match="as many chunks a stream"):
        per_stream_and_chunk(short, short)
    with pytest.raises(CompareError, match="without streams"):
        per_stream_and_chunk(short, Counted(tree, instructions=0, chunks=0, ok=0, streams=0))


def test_compare_samples_where_the_relays_cpu_goes_by_object_and_by_function() -> None:
    """--samples measures as usual and samples the relay with perf during the load: its
    rounds read as without it, then µs per chunk by shared object (largest first, the
    kernel's system calls among them) and by function, each row named."""
    done = _compare("openai", "4x20@50", "--runs", "1", "--samples")
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("round 1"))
    assert re.search(_FIGURES.replace("2/2", "4/4"), line), line
    tables = done.stdout.split("where the relay's CPU went, µs per chunk", 1)[1]
    by_object, by_function = tables.split("by shared object:", 1)[1].split("by function:")
    rows = re.findall(r"^ +(\d+\.\d{3})  (\S.*)$", by_object, re.MULTILINE)
    assert rows, by_object
    figures = [float(figure) for figure, _ in rows]
    assert figures == sorted(figures, reverse=True) and sum(figures) > 0, rows
    assert "[kernel.kallsyms]" in [name for _, name in rows], rows
    functions = re.findall(r"^ +\d+\.\d{3}  (\S+) \[[k.]\] (\S.*)$", by_function, re.MULTILINE)
    assert functions and any(name == "[kernel.kallsyms]" for name, _ in functions), by_function


def test_compare_counts_the_relays_calls_during_the_load_by_function_and_splits_them() -> None:
    """--calls counts the relay's Python function entries and C calls while the load runs
    (not its start-up's imports, hundreds of thousands), says each round's per chunk and by
    function; with --split, a stream's and a chunk's, and both by function."""
    done = _compare("openai", "2x3@50", "--runs", "1", "--calls", "--split", "30")
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("round 1"))
    found = re.search(r"this tree: ([\d,.-]+) calls a stream \+ ([\d,.-]+) a chunk \(3 tokens: "
                      r"([\d,.]+) calls per chunk \(([\d,.]+) Python function entries, "
                      r"([\d,.]+) C calls; ([\d,]+) over 6 chunks\), 2/2 streams; 30 tokens: "
                      r"[\d,.]+ calls per chunk \([^)]*; ([\d,]+) over 60 chunks\), 2/2 "
                      r"streams\)", line)  # fmt: skip
    assert found, line
    per_chunk, python, c_calls = (float(found[i].replace(",", "")) for i in (3, 4, 5))
    short, long = (int(found[i].replace(",", "")) for i in (6, 7))
    assert abs(python + c_calls - per_chunk) < 0.02 and abs(short / 6 - per_chunk) < 0.01
    assert 100 < short / 2 < 20_000, line  # a request's calls, not the imports'
    own, chunk = (float(found[i].replace(",", "")) for i in (1, 2))
    assert abs(own + chunk * 3 - short / 2) < 1 and abs(own + chunk * 30 - long / 2) < 1.5, line
    tables = done.stdout.split("calls by function (medians of 1 run(s)):", 1)[1]
    by_stream, by_chunk = tables.split("a stream's, besides its chunks:", 1)[1].split(
        "a chunk's:")
    for table in (by_stream, by_chunk):
        rows = [row.split(None, 1) for row in table.strip().splitlines()[1:]]
        assert len(rows) == 25 and all(re.fullmatch(r"-?\d+\.\d{3}", n) for n, _ in rows)
        assert any(name.startswith("py sserelay/") for _, name in rows), table
        assert any(name.startswith("C ") for _, name in rows), table


def test_compare_lists_the_relays_calls_per_chunk_by_function_without_a_split() -> None:
    """--calls alone: each round's calls per chunk, the median, and the most called
    functions per chunk, most first, whose sum is at most the round's figure."""
    done = _compare("openai", "2x3@50", "--runs", "1", "--calls")
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("round 1"))
    found = re.search(r"this tree: ([\d,.]+) calls per chunk \([\d,.]+ Python function "
                      r"entries, [\d,.]+ C calls; [\d,]+ over 6 chunks\), 2/2 streams", line)
    assert found, line
    per_chunk = float(found[1].replace(",", ""))
    assert f"this tree: {found[1]} calls per chunk ({found[1]})" in done.stdout
    table = done.stdout.split("per chunk:", 1)[1]
    rows = [row.split(None, 1) for row in table.strip().splitlines()[1:]]
    figures = [float(n) for n, _ in rows]
    assert len(rows) == 25 and figures == sorted(figures, reverse=True), table
    assert sum(figures) <= per_chunk + 0.01, (figures, per_chunk)
    assert any(name.startswith("py sserelay/") for _, name in rows), table


def test_the_call_counter_says_how_to_run_it() -> None:
    done = subprocess.run([sys.executable, str(calls_script), "out.json", "sserelay.cli"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("usage: calls.py OUT -- PYTHON -m")


def test_compare_refuses_what_it_cannot_measure_in_words(tmp_path: Path) -> None:
    """A malformed load, an unknown target, another tree for a target that is not sserelay,
    a revision that does not exist, a directory that is no checkout: exit status 2 and one
    line that says what is wrong, no traceback, nothing started."""
    cases = {
        ("article", "500x100"): "is not a load: write KxN@R",
        ("article", "0x10@20"): "must all be above 0",
        ("nothing", "2x3@50"): "no target 'nothing'; one of: nginx, openai",
        ("nginx", "2x3@50", "--against", "HEAD"): "nginx is not sserelay",
        ("article", "2x3@50", "--against", "no-such-rev"): "'no-such-rev' is not a revision",
        ("article", "2x3@50", "--against-dir", str(tmp_path)): "is not an sserelay checkout",
        ("article", "2x3@50", "--runs", "0"): "--runs must be at least 1",
        ("nginx", "2x3@50", "--instructions"): "--instructions counts sserelay's",
        ("article", "2x3@50", "--instructions", "--samples"): "one at a time",
        ("nginx", "2x3@50", "--calls"): "--calls counts sserelay's",
        ("article", "2x3@50", "--calls", "--samples"): "one at a time",
        ("article", "2x3@50", "--split", "9"): "use it with --instructions",
        ("article", "2x3@50", "--instructions", "--split", "3"): "other than the load's",
    }
    for args, words in cases.items():
        done = _compare(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert done.stdout == "", args


def test_a_load_is_written_streams_x_tokens_at_rate() -> None:
    assert parse_load("500x100@20") == Load(500, 100, 20.0)
    assert parse_load(" 2x3@12.5 ") == Load(2, 3, 12.5)
    for bad in ("500x100", "x100@20", "5x5@", "5x5@-1", "5 x 5 @ 5"):
        with pytest.raises(CompareError):
            parse_load(bad)
