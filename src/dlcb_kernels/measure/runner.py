"""Sampling one prepared kernel to a noise target.

Warm-up first (caches, page faults, thread pools, CPU clock ramp), then samples until the
relative noise IQR/median falls below the target, after at least `min_samples` samples and
`min_time` seconds, or until `max_time` / `max_samples` stops it (the record says which).
In cold-cache mode a flush runs before every sample, outside the timed region.

Each block of samples starts after a settle pause: threading runtimes keep their workers
spinning for a while after a call (OpenBLAS's pthreads pool for up to ~0.1 s), and a spinning
worker of the previous implementation would steal a core from the next one.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from .stats import Stats, summarize
from .timer import Timer

CACHE_MODES = ("warm", "cold")


@dataclass(frozen=True)
class Settings:
    noise_target: float = 0.02
    min_samples: int = 10
    min_time: float = 0.2        # seconds of samples before the noise test may stop the loop
    max_time: float = 2.0        # seconds of samples before giving up on the noise target
    max_samples: int = 500
    warmup_time: float = 0.05
    min_warmup: int = 2
    settle: float = 0.25         # pause before a block, seconds

    def __post_init__(self):
        if not 0 < self.noise_target < 1:
            raise ValueError(f"noise_target must be in (0, 1), got {self.noise_target}")
        if self.min_samples < 3:
            raise ValueError(f"min_samples must be >= 3, got {self.min_samples}")
        if self.max_samples < self.min_samples:
            raise ValueError("max_samples must be >= min_samples")
        for name in ("min_time", "max_time", "warmup_time", "settle"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_time < self.min_time:
            raise ValueError("max_time must be >= min_time")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Measurement:
    cache: str
    samples: list[float]          # seconds, in the order taken
    stats: Stats
    warmup_count: int
    stop_reason: str              # "noise target reached", "max_time", "max_samples"
    converged: bool               # whether the noise target was reached
    extra: dict = field(default_factory=dict)


def measure(fn: Callable[[], object], timer: Timer, settings: Settings = Settings(), *,
            cache: str = "warm", flush: Callable[[], object] | None = None) -> Measurement:
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}")
    if cache == "cold" and flush is None:
        raise ValueError("cold-cache measurement needs a flush function")
    if settings.settle:
        time.sleep(settings.settle)

    warmup = 0
    start = time.perf_counter()
    while warmup < settings.min_warmup or time.perf_counter() - start < settings.warmup_time:
        fn()
        warmup += 1

    samples: list[float] = []
    sampled = 0.0
    stop_reason = "max_samples"
    while len(samples) < settings.max_samples:
        if cache == "cold":
            flush()
        elapsed = timer.time(fn)
        samples.append(elapsed)
        sampled += elapsed
        if len(samples) >= settings.min_samples and sampled >= settings.min_time:
            if summarize(samples).rel_noise <= settings.noise_target:
                stop_reason = "noise target reached"
                break
        if sampled >= settings.max_time and len(samples) >= settings.min_samples:
            stop_reason = "max_time"
            break
    stats = summarize(samples)
    return Measurement(cache, samples, stats, warmup, stop_reason, stats.rel_noise <= settings.noise_target)


def measure_overhead(timer: Timer, samples: int = 2000) -> Stats:
    """The harness's own cost: a no-op timed the same way as a kernel."""
    def noop() -> None:
        return None

    return summarize([timer.time(noop) for _ in range(samples)])


def combine(measurements: list[Measurement]) -> Measurement:
    """Several rounds of the same measurement as one: samples pooled, statistics over all."""
    if not measurements:
        raise ValueError("measurements must not be empty")
    caches = {m.cache for m in measurements}
    if len(caches) != 1:
        raise ValueError(f"cannot combine cache modes {sorted(caches)}")
    if len(measurements) == 1:
        return measurements[0]
    samples = [s for m in measurements for s in m.samples]
    extra = dict(measurements[-1].extra)
    extra["rounds_detail"] = [{"median": m.stats.median, "count": m.stats.count, "stop_reason": m.stop_reason,
                               **m.extra} for m in measurements]
    stats = summarize(samples)
    return Measurement(measurements[0].cache, samples, stats, sum(m.warmup_count for m in measurements),
                       "; ".join(dict.fromkeys(m.stop_reason for m in measurements)),
                       all(m.converged for m in measurements), extra)
