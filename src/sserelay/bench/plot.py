"""The report's picture: relay CPU per chunk and p99 added latency, per target and load.

matplotlib is imported lazily and is optional: without it the report is written without a
plot, so the benchmark's smoke test runs whether or not it is installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from sserelay.bench.profiles import Profile
from sserelay.bench.runner import TargetResult
from sserelay.bench.targets import Kind

__all__ = ["write_plot"]


def write_plot(results: Sequence[TargetResult], profile: Profile, path: Path) -> Path | None:
    """Draw the plot into `path`; None (and nothing written) without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    from sserelay.bench.report import rows_for

    measured = [r for r in results if r.summaries]
    titles = [r.target.title for r in measured]
    fig, (cpu_ax, lat_ax) = plt.subplots(1, 2, figsize=(13, 0.55 * len(titles) + 2.2))
    height = 0.8 / max(1, len(profile.loads))
    for index, load in enumerate(profile.loads):
        rows = {row.title: row for row in rows_for(measured, load)}
        offsets = [i + index * height for i in range(len(titles))]
        cpu = [_or_zero(rows[t].s.cpu_us_per_chunk) if t in rows else 0.0 for t in titles]
        lat = [
            rows[t].added_p99_ms if t in rows and rows[t].kind is not Kind.DIRECT else 0.0
            for t in titles
        ]
        bars = cpu_ax.barh(offsets, cpu, height, label=load.label)
        cpu_ax.bar_label(bars, fmt="%.1f", fontsize="x-small", padding=2)
        bars = lat_ax.barh(offsets, lat, height, label=load.label)
        lat_ax.bar_label(bars, fmt="%+.1f", fontsize="x-small", padding=2)
    ticks = [i + height * (len(profile.loads) - 1) / 2 for i in range(len(titles))]
    for ax in (cpu_ax, lat_ax):
        ax.set_yticks(ticks, titles)
        ax.invert_yaxis()
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    # Log scales: the naive baseline is two orders of magnitude above the rest.
    cpu_ax.set_xscale("log")
    cpu_ax.set_xlabel("relay CPU µs per relayed chunk (log; direct has no relay)")
    lat_ax.set_xscale("symlog", linthresh=1.0)
    lat_ax.set_xlabel("p99 added latency vs direct, ms (symlog)")
    lat_ax.tick_params(labelleft=False)
    fig.suptitle("sserelay benchmark (shared 2-core machine; compare within the run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _or_zero(value: float | None) -> float:
    return 0.0 if value is None else value
