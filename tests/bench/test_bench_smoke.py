"""The benchmark's smoke test: a tiny run completes and writes its report. No timing asserts:
figures belong in docs/benchmarks.md, not in pass/fail."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sserelay.bench.targets import TARGETS, Kind

pytestmark = pytest.mark.timeout(300)


def _section(report: str, heading: str) -> str:
    """The text under a `## heading`, up to the next heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", report, re.S | re.M)
    return match.group(1) if match else ""


def test_smoke_profile_writes_a_report_with_a_row_per_available_target(tmp_path: Path) -> None:
    """`python -m sserelay.bench --profile smoke --out DIR` exits 0 and writes DIR/benchmarks.md
    with a measured row for every target that is available (its CPU split out into the
    kernel's part), and names every other one."""
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "sserelay.bench", "--profile", "smoke", "--out", str(out)],
        cwd=tmp_path,  # a wrong default output path would land here, never in docs/
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = (out / "benchmarks.md").read_text(encoding="utf-8")

    load_table = _section(report, "5 x 10 at 50 tok/s")
    missing = _section(report, "Not measured in this run")
    for target in TARGETS:
        measured = f"| {target.title} |" in load_table
        assert measured != (f"- {target.title}:" in missing), target.title

    def measured(kind: Kind) -> set[str]:
        return {t.title for t in TARGETS if t.kind is kind and f"| {t.title} |" in load_table}

    # These exist today and must always be measured; the others are probed.
    assert measured(Kind.DIRECT)
    assert "sserelay GET /completionChat (article)" in measured(Kind.SSERELAY)
    if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
        assert measured(Kind.NGINX)
    if importlib.util.find_spec("flask") is not None:
        assert measured(Kind.NAIVE)
    article = next(line for line in load_table.splitlines()
                   if line.startswith("| sserelay GET /completionChat (article) |"))
    cells = [cell.strip().replace(",", "") for cell in article.split("|")[1:-1]]
    total, kernel = float(cells[1]), float(cells[2])  # the kernel's part is part of the CPU
    assert 0 <= kernel <= total
    float(cells[5])  # p99 added after the first read: a number (its sign depends on direct)
    assert re.search(r"Machine: \d+ cores \(", report), "the report names the machine"
    has_plot = (out / "benchmarks.png").exists()
    assert has_plot == (importlib.util.find_spec("matplotlib") is not None)


def test_repeated_runs_go_in_rounds_of_every_target(tmp_path: Path) -> None:
    """With two runs per load, every target runs once before any runs again, and the
    capacity ramps come after both rounds: a drift on the shared machine falls on all
    targets alike. The targets table shows each ratio to nginx's lowest and highest within
    a round."""
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "sserelay.bench", "--profile", "smoke", "--repeats", "2",
         "--targets", "direct,nginx,article", "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    article = "sserelay GET /completionChat (article)"
    steps = []
    for line in done.stderr.splitlines():
        if "ramp" in line:
            steps.append("ramp")
        elif f"{article} |" in line:
            steps.append("article")
        elif "direct to the upstream (floor) |" in line:
            steps.append("direct")
        elif "nginx pass-through |" in line:
            steps.append("nginx")
    runs = [step for step in steps if step != "ramp"]
    assert runs == ["direct", "nginx", "article"] * 2, steps
    assert steps.index("ramp") > len(runs) - 1, steps
    targets = _section((out / "benchmarks.md").read_text(encoding="utf-8"),
                       "Against the issue's targets")
    ratio = next(line for line in targets.splitlines()
                 if line.startswith(f"| {article}: CPU per chunk vs nginx |"))
    low, high = map(float, re.findall(r"\(rounds ([\d.]+)-([\d.]+)x\)", ratio)[0])
    assert 0 < low <= high, ratio
