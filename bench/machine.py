"""The machine a benchmark ran on, recorded in every ``bench/results/*.json`` under ``"host"``.

``host_info()`` returns CPU model, logical cores, RAM, Python, OS, the UTC time of the run and the
git commit of the tree measured (with ``sumppump_dirty``: whether ``sumppump/`` differed from that
commit, i.e. the figures belong to uncommitted code). Nothing here raises: a field that cannot be
read is ``None``.
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def host_info() -> dict[str, Any]:
    """What the figures of one run were measured on (see the module docstring)."""
    dirty = _git("status", "--porcelain", "--", "sumppump")
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "date_utc": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "git_commit": _git("rev-parse", "--short=12", "HEAD"),
        "sumppump_dirty": None if dirty is None else bool(dirty),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
