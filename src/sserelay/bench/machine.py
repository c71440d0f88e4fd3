"""What the benchmark ran on: figures mean little without the machine beside them."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Machine", "cpu_model", "describe_machine", "nginx_version", "source_revision"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return 0.0


def nginx_version(executable: str = "nginx") -> str | None:
    """nginx's version string, or None when it is not installed."""
    path = shutil.which(executable) or shutil.which(executable, path="/usr/sbin")
    if path is None:
        return None
    # nginx -v writes to stderr.
    done = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ") or None


def source_revision() -> str | None:
    """The checkout's commit (``-dirty`` with uncommitted changes): what was measured."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=False, timeout=10,
        )  # fmt: skip
    except OSError:
        return None
    return done.stdout.strip() or None


@dataclass(frozen=True, slots=True)
class Machine:
    cpu: str
    cores: int
    ram_gib: float
    python: str
    nginx: str | None
    kernel: str
    date: str
    revision: str | None


def describe_machine() -> Machine:
    return Machine(
        cpu=cpu_model(),
        cores=os.cpu_count() or 0,
        ram_gib=_ram_gib(),
        python=platform.python_version(),
        nginx=nginx_version(),
        kernel=platform.release(),
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        revision=source_revision(),
    )
