"""CPU time and memory of other processes, read from /proc (Linux only).

The benchmark charges each relay only for its own process(es): the upstream, the load
generator and this orchestrator run beside it and must not count. /proc/<pid>/stat's
utime+stime covers all threads of a process, ended ones included, which matters for the
threaded Flask baseline; but it counts in clock ticks (10 ms), ~1% of nginx's whole CPU in a
100 x 100 run. `cpu_ns` reads the scheduler's own count, in nanoseconds, for the threads
alive now (/proc/<pid>/task/<tid>/schedstat).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "CpuReading",
    "RssSampler",
    "child_pids",
    "cpu_between",
    "cpu_ns",
    "cpu_seconds",
    "cpu_split",
    "io_calls",
    "machine_cpu_seconds",
    "ns_count_is_whole",
    "pids_by_cmdline",
    "read_cpu",
    "rss_bytes",
]

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _read_each(pids: Sequence[int], name: str) -> Iterator[str]:
    """/proc/<pid>/<name> of each of `pids` still there and readable by this user."""
    for pid in pids:
        try:
            yield Path(f"/proc/{pid}/{name}").read_text()
        except OSError:
            continue


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by `pids` (dead processes count as 0)."""
    user, system = cpu_split(pids)
    return user + system


def cpu_split(pids: Sequence[int]) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by `pids` (dead processes count as 0)."""
    user = system = 0
    for stat in _read_each(pids, "stat"):
        # The command name (field 2) may contain spaces and parentheses: split after its end.
        fields = stat[stat.rindex(")") + 2 :].split()
        user += int(fields[11])  # utime (field 14)
        system += int(fields[12])  # stime (field 15)
    return user / _TICKS, system / _TICKS


def io_calls(pids: Sequence[int]) -> tuple[int, int]:
    """(read, write) system calls made so far by `pids`: /proc/<pid>/io's syscr and syscw
    (read/readv/pread and write/writev/pwrite; recv and send count where they go through
    the same paths). Processes that are gone, or whose counts this user may not read,
    count as 0."""
    reads = writes = 0
    for text in _read_each(pids, "io"):
        counts = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
        reads += int(counts.get("syscr", 0))
        writes += int(counts.get("syscw", 0))
    return reads, writes


def cpu_ns(pids: Sequence[int]) -> tuple[int, frozenset[int]]:
    """CPU nanoseconds run so far by the live threads of `pids`, and those threads' ids: a
    thread that ends takes its count with it, so a difference of two readings is whole only
    when every thread of the first is still in the second."""
    total = 0
    threads: set[int] = set()
    for pid in pids:
        try:
            tids = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
        except OSError:
            continue
        for tid in tids:
            try:
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            except OSError:
                continue  # ended between the listing and the read
            threads.add(tid)
    return total, frozenset(threads)


def ns_count_is_whole(
    ticks_s: float, ns_s: float, before: frozenset[int], after: frozenset[int]
) -> bool:
    """Whether a `cpu_ns` difference (`ns_s`, seconds) holds all the CPU that `cpu_split`'s
    difference (`ticks_s`) counted: every thread of the first reading is in the second
    (`after`), and threads that came and went in between (a threaded server's per-request
    ones) took no more than the ticks' own rounding, two readings of two counters."""
    return bool(before) and before <= after and ns_s >= ticks_s - 4 / _TICKS


@dataclass(frozen=True, slots=True)
class CpuReading:
    """Both counts of some processes' CPU at one moment: `cpu_split`'s ticks (user, kernel,
    seconds) and `cpu_ns` (nanoseconds, and the threads they are of)."""

    user: float
    kernel: float
    ns: int
    threads: frozenset[int]


def read_cpu(pids: Sequence[int]) -> CpuReading:
    (user, kernel), (ns, threads) = cpu_split(pids), cpu_ns(pids)
    return CpuReading(user, kernel, ns, threads)


def cpu_between(before: CpuReading, after: CpuReading) -> tuple[float, float]:
    """(all, in the kernel) CPU seconds between two readings: the scheduler's nanoseconds,
    split into user and kernel as the ticks split, where they are whole
    (`ns_count_is_whole`); else the ticks."""
    kernel = after.kernel - before.kernel
    cpu = after.user - before.user + kernel
    precise = (after.ns - before.ns) / 1e9
    if ns_count_is_whole(cpu, precise, before.threads, after.threads):
        # A run too short for a single tick has no split to go by: all of it as user.
        return precise, (kernel / cpu * precise if cpu > 0 else 0.0)
    return cpu, kernel


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores, from /proc/stat.
    On a shared machine, busy time not spent by the benchmark says how disturbed it was."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return (total - idle) / _TICKS, total / _TICKS


def rss_bytes(pids: Sequence[int]) -> int:
    """Resident set size now, summed over `pids`."""
    return sum(int(statm.split()[1]) * _PAGE for statm in _read_each(pids, "statm"))


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (e.g. nginx's workers under its master)."""
    children: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return children
    for task in tasks:
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def pids_by_cmdline(*parts: str) -> list[int]:
    """Processes whose command line contains every one of `parts` (for servers started by
    code that does not expose their pid, such as the test redis-server)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(part in cmdline for part in parts):
            found.append(int(entry.name))
    return found


class RssSampler:
    """Polls the summed RSS of some processes in a thread; `peak` is the largest seen.

    `pids` is a callable so that processes that come and go (workers) are followed.
    """

    def __init__(self, pids: Callable[[], Sequence[int]], interval: float = 0.02) -> None:
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak = 0

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self._pids()))
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self._pids()))
