"""Where a benchmark runs: the CPU (host timer, last-level-cache flush, clock probe) or one
CUDA device (CUDA events on a stream of our own, L2 flush, NVML). The bench asks its target
for the device description, the timer of each prepared run, the cache flush and the monitor,
and hands GPU implementations the device and stream to launch on.
"""

from __future__ import annotations

import re
from typing import Callable

from . import cuda, devices
from .measure import HostTimer, Timer
from .measure.monitor import CpuClockMonitor, FirstTouchProbe, FmaCanary

GPU_TIMINGS = ("auto", "single", "batched", "graph")


def gpu_skipped_note() -> str | None:
    """Why "auto" stays on the CPU although a CUDA device is visible (CuPy missing), else None."""
    if not cuda.status().available:
        return None
    from .registry.gpu_inputs import gpu_unavailable_reason

    reason = gpu_unavailable_reason()
    return f"a CUDA device is visible but {reason.removeprefix('unavailable: ')}; benchmarking the CPU" \
        if reason else None


def parse_device(text: str) -> tuple[str, int]:
    """"cpu" -> ("cpu", 0); "cuda" / "cuda:N" / "gpu" -> ("cuda", N); "auto" -> cuda:0 when a
    CUDA device is usable and CuPy (which holds the GPU buffers) is installed, else the CPU."""
    text = text.strip().lower()
    if text == "auto":
        return ("cuda", 0) if cuda.status().available and gpu_skipped_note() is None else ("cpu", 0)
    if text == "cpu":
        return "cpu", 0
    match = re.fullmatch(r"(?:cuda|gpu)(?::(\d+))?", text)
    if not match:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {text!r}")
    index = int(match.group(1) or 0)
    status = cuda.status()
    if not status.available:
        raise ValueError(f"device {text!r}: CUDA is unavailable: {status.reason}")
    if index >= status.device_count:
        raise ValueError(f"device {text!r}: only {status.device_count} CUDA device(s) visible")
    return "cuda", index


class CpuTarget:
    backend = "cpu"

    def __init__(self, threads: int):
        self.threads = threads
        self.timer = HostTimer()

    def describe(self, measure: bool = True) -> dict:
        return devices.detect_cpu(threads=self.threads, measure=measure)

    def prepare_kwargs(self) -> dict:
        return {}

    def timer_for(self, run: Callable[[], object], cache: str = "warm") -> Timer:
        return self.timer

    def flusher(self) -> Callable[[], object]:
        from . import _cpu

        return _cpu.LlcFlusher().flush

    def monitor(self, device: dict):
        return CpuClockMonitor(self.threads, (device.get("clock") or {}).get("measured_ghz"))

    def first_touch(self):
        """The cost of a fresh page around each block (calls that allocate their output pay it)."""
        return FirstTouchProbe(self.threads)

    def canary(self, device: dict):
        """The FMA canary of each block, held against the device's measured fp32 peak (on these
        threads, with the ISA the kernels run); None where the device has none."""
        measured = ((device.get("peaks") or {}).get("fp32") or {}).get("measured_gflops")
        if not measured:
            return None
        return FmaCanary(self.threads, (device.get("kernels") or {}).get("default") or "auto", measured)

    def synchronize(self) -> None:
        return None


class CudaTarget:
    """One CUDA device. Every GPU implementation launches on `stream`, a non-blocking stream of
    our own, so events and graph capture see exactly the timed work."""

    backend = "cuda"

    def __init__(self, index: int, timing: str = "auto"):
        if timing not in GPU_TIMINGS:
            raise ValueError(f"timing must be one of {GPU_TIMINGS}, got {timing!r}")
        from .measure.cuda_timer import CudaEventTimer, choose_mode

        self.index = index
        self.timing = timing
        self._timer_class, self._choose_mode = CudaEventTimer, choose_mode
        self._stream = cuda.module().Stream(index)
        self.stream = self._stream.handle
        self.threads = 1

    def describe(self, measure: bool = True) -> dict:
        return devices.detect_gpu(self.index, measure=measure)

    def prepare_kwargs(self) -> dict:
        return {"device": self.index, "stream": self.stream}

    def timer_for(self, run: Callable[[], object], cache: str = "warm") -> Timer:
        """A CUDA-event timer. "auto" times one call first: single calls from 100 us up, below
        that batches of back-to-back calls (>= 1 ms a sample) so that launch gaps do not count.
        Graphs only when asked: a captured graph replays the buffers of its capture, which is
        wrong for a library that allocates its output inside each call. Cold-cache samples are
        single calls: only the first call after a flush would find the L2 cold."""
        if self.timing == "single" or cache == "cold":
            return self._timer_class(self.index, self.stream, mode="single", batch=1)
        mode, batch = self._choose_mode(self._one_call(run), graph=self.timing == "graph")
        if self.timing != "auto" and mode == "single":
            mode, batch = self.timing, 1
        return self._timer_class(self.index, self.stream, mode=mode, batch=batch)

    def _one_call(self, run: Callable[[], object]) -> float:
        timer = self._timer_class(self.index, self.stream, mode="single", batch=1)
        return min(timer.time(run) for _ in range(3))

    def flusher(self) -> Callable[[], object]:
        from .measure.cuda_timer import cuda_flusher

        return cuda_flusher(self.index, self.stream)

    def monitor(self, device: dict):
        from .measure.nvml import NvmlMonitor

        return NvmlMonitor(self.index)

    def canary(self, device: dict):
        return None  # NVML's clocks and limiting reasons say what a GPU block ran at

    def first_touch(self):
        return None  # device memory is allocated once per problem, not per call

    def synchronize(self) -> None:
        self._stream.synchronize()


def make_target(kind: str, index: int, threads: int, timing: str = "auto"):
    return CudaTarget(index, timing) if kind == "cuda" else CpuTarget(threads)
