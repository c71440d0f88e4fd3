"""The benchmark's CPU readings of another process: ticks and the scheduler's nanoseconds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sserelay.bench.procstat import (
    CpuReading,
    cpu_between,
    cpu_ns,
    cpu_split,
    io_calls,
    ns_count_is_whole,
)

# Says "ready", burns CPU when told (in its main thread, or in a thread that then ends),
# says "done", and waits to be read. The thread is started before "ready", so the first
# reading sees it, and is gone from /proc before "done": a joined thread's task can linger
# there for a moment, and the second reading would then still count it.
_WORK = (
    "import os, sys, threading, time\n"
    "def burn():\n"
    "    sum(range(20_000_000))\n"
    "go = threading.Event()\n"
    "if sys.argv[1] == 'thread':\n"
    "    t = threading.Thread(target=lambda: (go.wait(), burn())); t.start()\n"
    "print('ready', flush=True); sys.stdin.readline()\n"
    "if sys.argv[1] == 'thread':\n"
    "    go.set(); t.join()\n"
    "    while len(os.listdir('/proc/self/task')) > 1:\n"
    "        time.sleep(0.001)\n"
    "else:\n"
    "    burn()\n"
    "print('done', flush=True); sys.stdin.read()\n"
)


def _readings_around_work(where: str) -> tuple[float, float, frozenset[int], frozenset[int]]:
    """(ticks, nanoseconds as seconds, threads before, threads after) around the work."""
    with subprocess.Popen([sys.executable, "-c", _WORK, where], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as child:
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline() == "ready\n"
            ticks_before, (ns_before, threads_before) = cpu_split([child.pid]), cpu_ns([child.pid])
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "done\n"
            ticks_after, (ns_after, threads_after) = cpu_split([child.pid]), cpu_ns([child.pid])
        finally:
            child.kill()
    ticks = sum(ticks_after) - sum(ticks_before)
    return ticks, (ns_after - ns_before) / 1e9, threads_before, threads_after


def test_the_nanoseconds_are_whole_when_the_working_threads_lived_through() -> None:
    """Work done by a thread alive at both readings: the scheduler's nanoseconds hold what
    the ticks counted, to the ticks' rounding, and are taken."""
    ticks, ns, before, after = _readings_around_work("main")
    assert ticks > 0 and ns > 0
    assert ns_count_is_whole(ticks, ns, before, after)


def test_the_nanoseconds_are_not_taken_when_a_working_thread_ended() -> None:
    """Work done by a thread that ended between the readings left with it: only the ticks
    hold it (as Flask's per-request threads), so the nanoseconds are not taken."""
    ticks, ns, before, after = _readings_around_work("thread")
    assert ticks > 0.1  # the ended thread's work, which the ticks keep
    assert len(before) == 2 and len(after) == 1, (before, after)
    assert not ns_count_is_whole(ticks, ns, before, after)


@pytest.mark.parametrize(("before", "after", "whole"), [
    (frozenset({1}), frozenset({1}), True),
    (frozenset({1}), frozenset({1, 2}), True),  # a thread started and still runs
    (frozenset({1, 2}), frozenset({1}), False),  # a thread of the first reading ended
    (frozenset(), frozenset(), False),  # nothing was read
])
def test_the_nanoseconds_need_every_thread_of_the_first_reading(
    before: frozenset[int], after: frozenset[int], whole: bool
) -> None:
    assert ns_count_is_whole(1.0, 1.0, before, after) is whole


def test_cpu_between_takes_the_nanoseconds_split_as_the_ticks_split_when_they_are_whole() -> None:
    """2 s of ticks, a quarter in the kernel; 2.1 s of nanoseconds over the same threads:
    2.1 s, of which a quarter in the kernel."""
    before = CpuReading(user=1.0, kernel=1.0, ns=5_000_000_000, threads=frozenset({1, 2}))
    after = CpuReading(user=2.5, kernel=1.5, ns=7_100_000_000, threads=frozenset({1, 2}))
    cpu, kernel = cpu_between(before, after)
    assert cpu == pytest.approx(2.1) and kernel == pytest.approx(2.1 / 4)


def test_cpu_between_keeps_the_ticks_when_a_thread_of_the_first_reading_ended() -> None:
    """The ended thread took its nanoseconds with it: the ticks (which keep them) count."""
    before = CpuReading(user=1.0, kernel=1.0, ns=5_000_000_000, threads=frozenset({1, 2}))
    after = CpuReading(user=2.5, kernel=1.5, ns=5_500_000_000, threads=frozenset({1}))
    assert cpu_between(before, after) == (pytest.approx(2.0), pytest.approx(0.5))


def test_cpu_between_counts_a_run_shorter_than_a_tick_as_user_time() -> None:
    """No tick in between: the nanoseconds, with no split to go by, all as user."""
    reading = CpuReading(user=1.0, kernel=1.0, ns=5_000_000_000, threads=frozenset({1}))
    later = CpuReading(user=1.0, kernel=1.0, ns=5_003_000_000, threads=frozenset({1}))
    assert cpu_between(reading, later) == (pytest.approx(0.003), 0.0)


def test_io_calls_count_each_read_and_write_system_call_and_skip_gone_processes() -> None:
    """/proc/<pid>/io's syscr and syscw: 50 writes and 50 reads on a pipe show as at least
    that many (the interpreter makes a few of its own), and a pid that is gone adds 0."""
    read_end, write_end = os.pipe()
    try:
        reads_before, writes_before = io_calls([os.getpid()])
        for _ in range(50):
            os.write(write_end, b"x")
            os.read(read_end, 1)
        reads_after, writes_after = io_calls([os.getpid()])
    finally:
        os.close(read_end)
        os.close(write_end)
    assert reads_after - reads_before >= 50 and writes_after - writes_before >= 50
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert io_calls([int(gone.stdout)]) == (0, 0)
