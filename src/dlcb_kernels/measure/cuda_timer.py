"""Device-side timing: CUDA events recorded on the timed work's stream (the Timer protocol).

The GPU measures the interval between two points of one stream, so host-side costs count only
where they leave the GPU idle inside it. Three modes, for three sizes of kernel:

- single: events around one call. Right for calls of about 100 us and more.
- batched: events around `batch` back-to-back calls, divided by `batch`: the GPU runs call i+1
  while the host launches call i+2, so launch gaps vanish once a call outlasts its launch.
- graph: the `batch` calls captured once into a CUDA graph (cached for the function timed last)
  and the graph launch timed, divided by `batch`: no host launch between the calls at all, for
  kernels shorter than their own launch. A capture that fails (a library that synchronizes or
  allocates inside the call) falls back to batched and says so in `name` and `fallback_reason`.

Before the start event a short spin kernel gives the GPU a head start: it is still running while
the host records the event and launches the work, so the interval holds no launch gap.

The timed function must queue its work on the timer's stream. A graph replays the captured
arguments: the buffers the function uses must live as long as the function (the timer keeps a
reference to the function it captured). Cold-cache timing (a flush before each sample) means
what it says in single mode only: in the other modes only the first of `batch` calls is cold.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from .. import cuda
from .._validate import require_int

MODES = ("single", "batched", "graph")
# Calls at least this long are timed one at a time: a launch gap is then a small part of them.
SINGLE_CALL_MIN_SECONDS = 100e-6
# Batched and graph samples aim at least this long, well above the events' ~0.5 us resolution.
TARGET_SAMPLE_SECONDS = 1e-3
MAX_BATCH = 10_000
# Head start before the start event: longer than a Python-level launch of the timed call.
HEAD_START_SECONDS = 50e-6


def choose_mode(seconds_per_call: float, graph: bool = True) -> tuple[str, int]:
    """(mode, batch) for calls of about `seconds_per_call`: single for calls >= 100 us, else
    graph (or batched, with graph=False) with a batch long enough for >= 1 ms per sample."""
    if isinstance(seconds_per_call, bool) or not isinstance(seconds_per_call, (int, float)):
        raise TypeError(f"seconds_per_call must be a number, got {type(seconds_per_call).__name__}")
    if not (math.isfinite(seconds_per_call) and seconds_per_call >= 0):
        raise ValueError(f"seconds_per_call must be finite and >= 0, got {seconds_per_call}")
    if seconds_per_call >= SINGLE_CALL_MIN_SECONDS:
        return "single", 1
    mode = "graph" if graph else "batched"
    if seconds_per_call == 0:
        return mode, MAX_BATCH
    # Less a hair, so that 1 ms / 1 us, 1000.0000000000001 in binary, gives 1000.
    return mode, min(MAX_BATCH, math.ceil(TARGET_SAMPLE_SECONDS / seconds_per_call - 1e-9))


class CudaEventTimer:
    """Times one call of a function that queues work on `stream` (a cudaStream_t of `device`
    as an int; 0 is the legacy default stream, which graph mode cannot capture)."""

    def __init__(self, device: int = 0, stream: int = 0, mode: str = "single", batch: int = 1,
                 head_start: float = HEAD_START_SECONDS) -> None:
        device = require_int(device, "device", 0)
        stream = require_int(stream, "stream", 0)
        batch = require_int(batch, "batch", 1)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if mode == "single" and batch != 1:
            raise ValueError(f"single mode times one call: batch must be 1, got {batch}")
        if mode == "graph" and stream == 0:
            raise ValueError("graph mode needs a stream other than the default (0): the legacy "
                             "default stream cannot be captured")
        if not (isinstance(head_start, (int, float)) and 0 <= head_start <= 1e-2):
            raise ValueError(f"head_start must be seconds in [0, 0.01], got {head_start!r}")
        self._ext = cuda._visible_device(device, "device")
        self._events = self._ext.EventTimer(device)
        self.device = device
        self.stream = stream
        self.mode = mode
        self.batch = batch
        self.head_start = float(head_start)
        self.fallback_reason: str | None = None
        self._captured_fn: Callable[[], object] | None = None
        self._graph = None

    @property
    def name(self) -> str:
        n = self.batch
        text = {
            "single": "CUDA events around one call",
            "batched": f"CUDA events around {n} back-to-back calls, divided by {n}",
            "graph": f"CUDA events around one launch of a CUDA graph of {n} captured calls, divided by {n}",
        }[self.mode]
        if self.head_start:
            text += f"; {self.head_start * 1e6:g} us spin kernel before the start event"
        if self.fallback_reason:
            text += f" (graph capture failed, fell back to batched: {self.fallback_reason})"
        return text

    def time(self, fn: Callable[[], object]) -> float:
        """Seconds per call of fn, as the GPU timed it."""
        if self.mode == "graph":
            graph = self._graph_for(fn)
            if graph is not None:
                return self._timed(functools.partial(graph.launch, self.stream)) / self.batch
        if self.mode == "single":
            return self._timed(fn)

        def calls() -> None:
            for _ in range(self.batch):
                fn()

        return self._timed(calls) / self.batch

    def synchronize(self) -> None:
        """Wait for the device: warm-up calls are only queued, and a warm-up timed on the host
        would otherwise queue a thousand 20 ms GEMMs in its 50 ms (seen on an H200)."""
        self._ext.synchronize(self.device)

    def _timed(self, work: Callable[[], object]) -> float:
        if self.head_start:
            self._ext.spin(self.device, self.stream, self.head_start)
        self._events.start(self.stream)
        work()
        self._events.stop(self.stream)
        return self._events.elapsed()

    def _graph_for(self, fn: Callable[[], object]):
        """The graph of `batch` calls of fn, captured on first use; None after a fallback."""
        # == rather than is: each access to a bound method (prepared.run) makes a new object.
        if self._graph is not None and self._captured_fn == fn:
            return self._graph
        self._graph = self._captured_fn = None  # free the previous graph before capturing
        capture = self._ext.GraphCapture(self.device, self.stream)
        reason = None
        capture.begin()
        try:
            for _ in range(self.batch):
                fn()
        except Exception as e:  # noqa: BLE001 (any error while capturing means "not capturable")
            reason = f"{type(e).__name__}: {e}"
        finally:
            try:
                capture.end()
            except RuntimeError as e:
                reason = reason or str(e)
        if reason is None and capture.node_count == 0:
            reason = "the capture recorded no work on the timer's stream"
        if reason is not None:
            self.mode = "batched"
            self.fallback_reason = reason
            return None
        self._graph, self._captured_fn = capture, fn
        return capture


def cuda_flusher(device: int = 0, stream: int = 0) -> Callable[[], None]:
    """A flush function for cold-cache timing: overwrites a buffer twice the L2 size on `stream`
    (queued before the sample's start event, so outside the timed interval)."""
    return functools.partial(cuda.L2Flusher(device).flush, stream)
