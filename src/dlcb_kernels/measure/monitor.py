"""Device conditions around a measurement: the clock seen right after each block of samples,
held against the device's reference clock, so a throttled block is flagged; and the machine's
FMA throughput just before and after a block (the canary), held against the device's kept peak,
so a block the host slowed down is caught.

Why a throughput canary as well as the clock: on a shared VM host the vCPU's physical core is
at times shared with another guest (its SMT sibling busy) or slowed otherwise, while the clock
stays where it was. Measured on a 2-core Zen 4 KVM guest, 40 blocks of a 1024^3 GEMM on 2
threads: block medians 11.1-20.2 ms; their correlation with the FMA canary (the lower of before
and after) -0.85, with the add-chain clock +0.19; the 20.2 ms blocks saw the canary at 117 of
236 GFLOP/s, the clock unchanged at 3.69 GHz.
"""

from __future__ import annotations

from .. import _cpu

# A block whose clock falls this far below the reference is flagged as throttled.
THROTTLE_FRACTION = 0.95


class FirstTouchProbe:
    """What one page of freshly allocated memory costs the kernel that first writes it (page
    fault and zeroing), per page of wall time on `threads` threads, from writing 8 MiB of fresh
    mappings (median of 3, a few ms). On a 2-core KVM guest it read 0.8 to 3.1 us a page
    within an hour on 2 threads; PyTorch's 1x1 convolution N8 C16 112x112 -> 96 faulted 18,818
    pages a call in a fresh process (36-40 ms a call, 6.9 ms where its memory was reused), so
    at those costs its time moves by tens of milliseconds."""

    def __init__(self, threads: int):
        self.threads = threads

    def __call__(self) -> float:
        return _cpu.first_touch(self.threads, 8 << 20, 3)["seconds_per_page"]


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


class FmaCanary:
    """FMA throughput on `threads` threads in about 3.5 ms (best of 3 repetitions of 1 ms, each
    thread's rate in its own CPU time, so time descheduled is not counted: what is measured is
    how fast the cores run when they do)."""

    def __init__(self, threads: int, isa: str, reference_gflops: float):
        self.threads = threads
        self.isa = isa
        self.reference_gflops = reference_gflops

    def __call__(self) -> float:
        return _cpu.fma_throughput("fp32", self.isa, self.threads, 1.0, 3)["gflops"]
