"""Device conditions around a measurement: the clock seen right after each block of samples,
held against the device's reference clock, so a throttled (or contended) block is flagged.
"""

from __future__ import annotations

from .. import _cpu

# A block whose clock falls this far below the reference is flagged as throttled.
THROTTLE_FRACTION = 0.95


class CpuClockMonitor:
    """Measures the core clock on `threads` threads in about 10 ms (dependent add chains)."""

    def __init__(self, threads: int, reference_ghz: float | None):
        self.threads = threads
        self.reference_ghz = reference_ghz

    def sample(self) -> dict:
        ghz = _cpu.measure_clock(self.threads, 2.0, 3)["ghz"]
        throttled = bool(self.reference_ghz) and ghz < THROTTLE_FRACTION * self.reference_ghz
        return {"clock_after_ghz": ghz, "reference_ghz": self.reference_ghz, "throttled": throttled,
                "method": f"add-chain clock on {self.threads} threads right after the samples; throttled "
                          f"when below {THROTTLE_FRACTION:.0%} of the device's measured clock"}
