"""What the trial ran on, and how much memory it used: facts read from the running process."""

from __future__ import annotations

import os
import platform
import resource
import socket
import sys
from functools import cache


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB since it started.

    ``ru_maxrss`` is a high-water mark kept by the kernel, so it also covers
    allocations made and freed during setup (training, model loading).
    """
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


def compact_ranges(cpus: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``, the notation of ``taskset`` and cgroup cpusets."""
    parts: list[str] = []
    ordered = sorted(cpus)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


@cache
def cpu_model() -> str:
    """The CPU's marketing name (``model name`` in /proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_info() -> dict[str, object]:
    """Hostname, CPU model, logical CPUs, the CPUs this process may run on, and the architecture."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "affinity": compact_ranges(affinity),
        "machine": platform.machine(),
    }
