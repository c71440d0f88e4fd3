"""``python -m sserelay.bench`` (``make bench``): run the benchmark, write the report."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from sserelay.bench.machine import describe_machine
from sserelay.bench.profiles import PROFILES
from sserelay.bench.report import write_report
from sserelay.bench.runner import run_benchmark
from sserelay.bench.targets import TARGETS, Kind


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sserelay.bench",
        description="Relay the same stamped load directly, through nginx, through sserelay's "
        "endpoints and through a naive Flask relay; write a report with tables and a plot.",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full",
                        help="full: the issue's loads (a few minutes); smoke: a tiny run")
    parser.add_argument("--out", type=Path, default=Path("docs"),
                        help="directory for benchmarks.md and benchmarks.png (default: docs)")
    parser.add_argument("--targets", metavar="KEYS",
                        help="comma-separated subset of: " + ", ".join(t.key for t in TARGETS)
                        + " (direct always runs: the others are measured against it)")
    parser.add_argument("--repeats", type=int, metavar="N",
                        help="runs per load and target, the median kept (default: the profile's)")
    args = parser.parse_args(argv)  # fmt: skip

    profile = PROFILES[args.profile]
    if args.repeats:
        profile = dataclasses.replace(profile, repeats=args.repeats)
    targets = list(TARGETS)
    if args.targets:
        keys = {key.strip() for key in args.targets.split(",")}
        unknown = keys - {t.key for t in TARGETS}
        if unknown:
            parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
        targets = [t for t in TARGETS if t.key in keys or t.kind is Kind.DIRECT]

    # Before the run: the revision measured is the one checked out when it started.
    machine = describe_machine()
    results = run_benchmark(profile, targets, _log)
    path = write_report(results, args.profile, profile, machine, args.out)
    _log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
