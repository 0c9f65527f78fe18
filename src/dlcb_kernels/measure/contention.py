"""How busy the machine is with other work, from /proc (Linux): the CPU time every other process
used over a short window (the machine's busy time minus this process's own), the hypervisor's
steal time, and the load average. Sampled before a run so that a run on a shared or loaded
machine says so at its start and in its summary; elsewhere (no /proc) nothing is claimed."""

from __future__ import annotations

import os
import time
from pathlib import Path

# Other processes using more than this share of one CPU make the machine "busy" for a benchmark.
BUSY_CORES = 0.25


def _cpu_ticks() -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies of all CPUs together, from /proc/stat's first line."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
    return total - idle - steal, steal, total


def _own_ticks() -> int | None:
    """This process's user + system jiffies, its threads included."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def sample(seconds: float = 0.5) -> dict | None:
    """{"other_busy_cpus", "steal_fraction", "load_average_1m", "cpus", "window_s", "busy"}: what
    other work did over `seconds` while this process slept; None where /proc is missing."""
    before, own_before = _cpu_ticks(), _own_ticks()
    if before is None or own_before is None:
        return None
    start = time.monotonic()
    time.sleep(seconds)
    after, own_after = _cpu_ticks(), _own_ticks()
    window = time.monotonic() - start
    hz = os.sysconf("SC_CLK_TCK")
    busy = max(0, (after[0] - before[0]) - (own_after - own_before)) / hz
    total = max(1, after[2] - before[2])
    other = busy / window
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"other_busy_cpus": round(other, 3), "steal_fraction": round((after[1] - before[1]) / total, 4),
            "load_average_1m": load, "cpus": os.cpu_count(), "window_s": round(window, 3),
            "busy": other > BUSY_CORES}


def describe(state: dict) -> str:
    """One line for a warning."""
    steal = f", {state['steal_fraction']:.0%} of CPU time stolen by the hypervisor" if state["steal_fraction"] else ""
    return (f"the machine is busy: other processes used {state['other_busy_cpus']:.2f} of its "
            f"{state['cpus']} CPUs over {state['window_s']:.1f} s{steal}; timings will be noisy and "
            "ratios shaky")
