"""Timers: one API for host-side and (later) device-side timing.

A timer times one call of a zero-argument function and returns seconds. A host timer brackets
the call with perf_counter_ns; a device timer would record events around the launch and wait
for the second one. The measurement loop only sees this interface.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol


class Timer(Protocol):
    name: str

    def time(self, fn: Callable[[], object]) -> float:
        """Seconds that one call of fn took."""

    def synchronize(self) -> None:
        """Wait until the work fn queued has finished (untimed calls between samples)."""


class HostTimer:
    """Wall-clock time of a synchronous call (CPU kernels release the GIL and return when done)."""

    name = "host perf_counter_ns"

    def time(self, fn: Callable[[], object]) -> float:
        start = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - start) * 1e-9

    def synchronize(self) -> None:
        """Nothing to wait for: the call has returned when its work is done."""
