"""How busy the machine is with other work, from /proc (Linux): the CPU time every other process
used over a window (the machine's busy time minus this process's own), the hypervisor's steal
time, and the load average. Sampled before a run (so a run on a shared or loaded machine says so
at its start and in its summary) and over every block of samples (so each record says whether
other work ran while it was timed); elsewhere (no /proc) nothing is claimed."""

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


# A hypervisor stealing more than this share of all CPU time makes the machine "busy" too.
BUSY_STEAL = 0.05
# The shortest window a block's usage is read over: 10 ticks at the usual 100 Hz, so that one
# busy core elsewhere shows as about 1.0 +- 0.1 CPUs rather than anything from 0 to 2.
MIN_WINDOW_S = 0.1


class _Snapshot:
    """The machine's and this process's CPU counters at one moment."""

    def __init__(self):
        self.machine = _cpu_ticks()
        self.own = _own_ticks()
        self.time = time.monotonic()

    @property
    def readable(self) -> bool:
        return self.machine is not None and self.own is not None


def _usage(before: _Snapshot, after: _Snapshot) -> dict:
    """What other work did between two snapshots. /proc counts in clock ticks (usually 10 ms), so
    over a window of w seconds other_busy_cpus is known to about 0.01 / w."""
    window = max(after.time - before.time, 1e-9)
    hz = os.sysconf("SC_CLK_TCK")
    busy = max(0, (after.machine[0] - before.machine[0]) - (after.own - before.own)) / hz
    steal = (after.machine[1] - before.machine[1]) / max(1, after.machine[2] - before.machine[2])
    other = busy / window
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"other_busy_cpus": round(other, 3), "steal_fraction": round(steal, 4), "load_average_1m": load,
            "cpus": os.cpu_count(), "window_s": round(window, 3),
            "busy": other > BUSY_CORES or steal > BUSY_STEAL}


def sample(seconds: float = 0.5) -> dict | None:
    """{"other_busy_cpus", "steal_fraction", "load_average_1m", "cpus", "window_s", "busy"}: what
    other work did over `seconds` while this process slept; None where /proc is missing."""
    before = _Snapshot()
    if not before.readable:
        return None
    time.sleep(seconds)
    return _usage(before, _Snapshot())


# A block before or after which the machine's FMA throughput was below this share of the
# device's kept peak ran on a slowed machine (see monitor.FmaCanary).
SLOWED_FRACTION = 0.9


def _minor_faults() -> int | None:
    """This process's minor page faults so far (all threads); None where the OS does not say."""
    try:
        import resource
    except ImportError:   # not a Unix
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class BlockWatch:
    """Watches one block of samples: other processes' CPU time and the hypervisor's steal while
    it ran (from /proc), the canary's throughput just before and after it, the page faults of
    CPU kernels in it (`page_faults`; the harness divides them by the calls) and the cost of a
    first touch of fresh memory around it (`first_touch_s_per_page`, monitor.FirstTouchProbe),
    then the device monitor's conditions (the clock, or NVML's).

    - contended: other processes used more than BUSY_CORES of a CPU, or steal exceeded BUSY_STEAL;
    - slowed: the canary fell below SLOWED_FRACTION of the kept peak (the host slowed the cores:
      another guest on the SMT sibling, power); a slowed block on an otherwise quiet machine is
      marked "retry", since such spells pass;
    - on a CPU, a low clock in a contended block is a disturbed clock check (`clock_disturbed`),
      not throttling: the probe shares the cores.
    """

    def __init__(self, monitor=None, *, cpu_kernels: bool = True, canary=None, first_touch=None):
        self.monitor = monitor
        self.cpu_kernels = cpu_kernels
        self.canary = canary
        self.first_touch = first_touch
        self._before: _Snapshot | None = None
        self._canary_before: float | None = None
        self._touch_before: float | None = None
        self._faults_before: int | None = None

    def start(self) -> None:
        self._canary_before = self.canary() if self.canary is not None else None
        self._touch_before = self.first_touch() if self.first_touch is not None else None
        # after the probes, which fault pages of their own
        self._faults_before = _minor_faults() if self.cpu_kernels else None
        self._before = _Snapshot()

    def stop(self) -> dict:
        after = _Snapshot()
        if self._before is not None:
            # /proc counts in clock ticks: a block shorter than MIN_WINDOW_S is watched on, idle,
            # until the window is long enough to see another process's CPU time at all
            rest = MIN_WINDOW_S - (after.time - self._before.time)
            if rest > 0:
                time.sleep(rest)
                after = _Snapshot()
        faults = _minor_faults() if self._faults_before is not None else None
        usage = _usage(self._before, after) if self._before is not None and self._before.readable \
            and after.readable else None
        conditions = {}
        if faults is not None and self._faults_before is not None:
            conditions["page_faults"] = faults - self._faults_before
        if self._touch_before is not None:
            conditions["first_touch_s_per_page"] = (self._touch_before + self.first_touch()) / 2
        if self.canary is not None and self._canary_before is not None and self.canary.reference_gflops:
            readings = (self._canary_before, self.canary())
            speed = min(readings) / self.canary.reference_gflops
            conditions.update(canary_gflops=[round(v, 1) for v in readings], speed=round(speed, 3),
                              slowed=speed < SLOWED_FRACTION)
        conditions.update(self.monitor.sample() if self.monitor is not None else {})
        conditions["machine"] = usage
        conditions["contended"] = bool(usage and usage["busy"])
        if self.cpu_kernels and conditions["contended"] and conditions.get("throttled"):
            conditions["throttled"] = False
            conditions["clock_disturbed"] = True
        conditions["retry"] = bool(conditions.get("slowed")) and not conditions["contended"]
        return conditions


def describe(state: dict) -> str:
    """One line for a warning."""
    steal = f", {state['steal_fraction']:.0%} of CPU time stolen by the hypervisor" if state["steal_fraction"] else ""
    return (f"the machine is busy: other processes used {state['other_busy_cpus']:.2f} of its "
            f"{state['cpus']} CPUs over {state['window_s']:.1f} s{steal}; timings will be noisy and "
            "ratios shaky")
