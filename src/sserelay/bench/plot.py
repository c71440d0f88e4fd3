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
    fig, (cpu_ax, lat_ax) = plt.subplots(1, 2, figsize=(13, 0.6 * len(titles) + 2.4))
    height = 0.8 / max(1, len(profile.loads))
    top_cpu, top_lat, bottom_lat = 1.0, 1.0, 0.0
    for index, load in enumerate(profile.loads):
        rows = {row.title: row for row in rows_for(measured, load)}
        offsets = [i + index * height for i in range(len(titles))]
        cpu = [rows[t].s.cpu_us_per_chunk if t in rows else None for t in titles]
        # Direct is the reference: it has neither relay CPU nor added latency.
        lat = [
            rows[t].added_p99_ms if t in rows and rows[t].kind is not Kind.DIRECT else None
            for t in titles
        ]
        bars = cpu_ax.barh(offsets, [_or_zero(v) for v in cpu], height, label=load.label)
        cpu_ax.bar_label(bars, [_label(v, "{:.1f}") for v in cpu], fontsize="x-small", padding=2)
        bars = lat_ax.barh(offsets, [_or_zero(v) for v in lat], height)
        lat_ax.bar_label(bars, [_label(v, "{:+.1f}") for v in lat], fontsize="x-small", padding=2)
        top_cpu = max([top_cpu, *(v for v in cpu if v is not None)])
        top_lat = max([top_lat, *(v for v in lat if v is not None)])
        bottom_lat = min([bottom_lat, *(v for v in lat if v is not None)])
    ticks = [i + height * (len(profile.loads) - 1) / 2 for i in range(len(titles))]
    for ax in (cpu_ax, lat_ax):
        ax.set_yticks(ticks, titles)
        ax.invert_yaxis()
        ax.grid(axis="x", which="major", alpha=0.3)
    cpu_ax.set_xlim(0, top_cpu * 1.15)  # room for the value labels
    cpu_ax.set_xlabel("relay CPU µs per relayed chunk (direct: no relay)")
    # Symlog: added latencies span from about zero to seconds for the naive baseline.
    lat_ax.set_xscale("symlog", linthresh=1.0)
    # Added latency can come out negative (a busier direct run); no wider than needed.
    lat_ax.set_xlim(bottom_lat * 2 if bottom_lat < 0 else 0, top_lat * 4)
    lat_ax.set_xlabel("p99 added latency vs direct, ms (symlog)")
    lat_ax.tick_params(labelleft=False)
    fig.legend(loc="lower center", ncols=len(profile.loads), fontsize="small")
    fig.suptitle("sserelay benchmark (shared 2-core machine; compare within the run)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _label(value: float | None, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def _or_zero(value: float | None) -> float:
    return 0.0 if value is None else value
