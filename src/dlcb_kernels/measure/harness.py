"""The one measurement loop of dlcb: settle, warm up, sample until a stopping criterion says
stop, summarize. Every timing in the package goes through it: kernels in `dlcb bench` and the
pytest plugin (through dlcb_kernels.harness, which checks the result against the reference
first and makes the record), whole model steps in `dlcb validate`, and collectives across the
ranks of a job (each sample reduced to the slowest rank before the criterion sees it).

The stopping criterion is pluggable, as nvbench's is:
- NoiseTarget: until the relative noise IQR/median falls below a target, after at least
  `min_samples` samples and `min_time` seconds, or until `max_time` / `max_samples` stop it;
- FixedRepeats: exactly n samples (end-to-end model steps, which are long and few).

Settle: threading runtimes keep their workers spinning for a while after a call (OpenBLAS's
pthreads pool for up to ~0.1 s), and a spinning worker of the previous implementation would
steal a core from the next one, so a block of samples starts after a pause.

A block can be watched (`watch`): an object whose start() is called before the first sample and
whose stop() after the last returns a dict of conditions (other processes' CPU time during the
block, the machine's speed before and after it), kept with the measurement; a block the watch
marks "retry" (the machine itself ran slow) is measured again, up to `retries` times.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

from .stats import Stats, summarize
from .timer import Timer

CACHE_MODES = ("warm", "cold")


class StoppingCriterion(Protocol):
    name: str

    def stop_reason(self, samples: list[float], sampled_seconds: float) -> str | None:
        """Why sampling stops after these samples, or None to go on."""

    def converged(self, stats: Stats) -> bool:
        """Whether the samples are steady enough to be taken as fact."""

    def as_dict(self) -> dict:
        ...


@dataclass(frozen=True)
class NoiseTarget:
    noise_target: float = 0.02
    min_samples: int = 10
    min_time: float = 0.2        # seconds of samples before the noise test may stop the loop
    max_time: float = 2.0        # seconds of samples before giving up on the noise target
    max_samples: int = 500
    name = "noise target"

    def __post_init__(self):
        if not 0 < self.noise_target < 1:
            raise ValueError(f"noise_target must be in (0, 1), got {self.noise_target}")
        if self.min_samples < 3:
            raise ValueError(f"min_samples must be >= 3, got {self.min_samples}")
        if self.max_samples < self.min_samples:
            raise ValueError("max_samples must be >= min_samples")
        for name in ("min_time", "max_time"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_time < self.min_time:
            raise ValueError("max_time must be >= min_time")

    def stop_reason(self, samples: list[float], sampled_seconds: float) -> str | None:
        if len(samples) >= self.min_samples:
            if sampled_seconds >= self.min_time and summarize(samples).rel_noise <= self.noise_target:
                return "noise target reached"
            if sampled_seconds >= self.max_time:
                return "max_time"
        if len(samples) >= self.max_samples:
            return "max_samples"
        return None

    def converged(self, stats: Stats) -> bool:
        return stats.rel_noise <= self.noise_target

    def as_dict(self) -> dict:
        return {"criterion": self.name, **asdict(self)}


@dataclass(frozen=True)
class FixedRepeats:
    repeats: int
    noise_target: float = 0.05   # only decides `converged`: a fixed count is not resampled
    name = "fixed repeats"

    def __post_init__(self):
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int):
            raise TypeError(f"repeats must be an int, got {type(self.repeats).__name__}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if not 0 < self.noise_target < 1:
            raise ValueError(f"noise_target must be in (0, 1), got {self.noise_target}")

    def stop_reason(self, samples: list[float], sampled_seconds: float) -> str | None:
        return "fixed repeats" if len(samples) >= self.repeats else None

    def converged(self, stats: Stats) -> bool:
        return stats.rel_noise <= self.noise_target

    def as_dict(self) -> dict:
        return {"criterion": self.name, **asdict(self)}


@dataclass(frozen=True)
class Warmup:
    min_calls: int = 2
    min_time: float = 0.05       # seconds of untimed calls at least

    def __post_init__(self):
        if self.min_calls < 0 or self.min_time < 0:
            raise ValueError("warm-up calls and time must be >= 0")


@dataclass(frozen=True)
class Settings:
    """How `dlcb bench` and the pytest plugin measure a kernel: the noise-target criterion, the
    warm-up and the settle pause (flat, as the CLI's options and the table's run entry have it)."""

    noise_target: float = 0.02
    min_samples: int = 10
    min_time: float = 0.2
    max_time: float = 2.0
    max_samples: int = 500
    warmup_time: float = 0.05
    min_warmup: int = 2
    settle: float = 0.25         # pause before a block, seconds
    retries: int = 2             # a block slowed by the machine itself is measured again this often

    def __post_init__(self):
        self.criterion()  # validates the criterion's fields
        Warmup(self.min_warmup, self.warmup_time)
        if self.settle < 0:
            raise ValueError("settle must be >= 0")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")

    def criterion(self) -> NoiseTarget:
        return NoiseTarget(self.noise_target, self.min_samples, self.min_time, self.max_time, self.max_samples)

    def warmup(self) -> Warmup:
        return Warmup(self.min_warmup, self.warmup_time)

    def as_dict(self) -> dict:
        return {"criterion": NoiseTarget.name, **asdict(self)}


@dataclass
class Measurement:
    cache: str
    samples: list[float]          # seconds, in the order taken
    stats: Stats
    warmup_count: int
    stop_reason: str              # the criterion's: "noise target reached", "max_time", ...
    converged: bool               # whether the criterion takes the samples as steady
    extra: dict = field(default_factory=dict)
    blocks: list[dict] = field(default_factory=list)   # what each block's watch saw


def settle(seconds: float) -> None:
    if seconds:
        time.sleep(seconds)


def warm_up(fn: Callable[[], object], warmup: Warmup,
            synchronize: Callable[[], object] | None = None) -> int:
    """Untimed calls (caches, page faults, thread pools, the CPU clock ramp); returns how many.
    `synchronize` waits for each call's work where fn only queues it (a GPU), so the warm-up's
    time counts work done, not launches."""
    calls = 0
    start = time.perf_counter()
    while calls < warmup.min_calls or time.perf_counter() - start < warmup.min_time:
        fn()
        if synchronize is not None:
            synchronize()
        calls += 1
    return calls


def sample_until(take_sample: Callable[[], float], criterion: StoppingCriterion, *,
                 calls_per_sample: int = 1) -> tuple[list[float], str]:
    """Samples (seconds per call) until the criterion stops; returns them and its reason. The
    criterion's time budget counts every call of a sample (calls_per_sample of them)."""
    samples: list[float] = []
    sampled = 0.0
    while True:
        value = take_sample()
        samples.append(value)
        sampled += value * calls_per_sample
        reason = criterion.stop_reason(samples, sampled)
        if reason is not None:
            return samples, reason


def measure(fn: Callable[[], object], timer: Timer, criterion: StoppingCriterion, *,
            warmup: Warmup = Warmup(), settle_s: float = 0.25, cache: str = "warm",
            flush: Callable[[], object] | None = None, watch=None, retries: int = 0) -> Measurement:
    """One block: settle, warm up, sample fn with the timer until the criterion stops. In
    cold-cache mode the flush runs before every sample, outside the timed region.

    A block its watch marks for a retry (the machine itself ran slow, see contention.BlockWatch)
    is measured again, up to `retries` times; the discarded blocks are listed in the
    measurement's extra ("discarded_blocks"), and if every try was slowed the least slowed one
    is kept, flagged by its watch."""
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}")
    if cache == "cold" and flush is None:
        raise ValueError("cold-cache measurement needs a flush function")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")

    def take_sample() -> float:
        if cache == "cold":
            flush()
        return timer.time(fn)

    tries = []
    for _ in range(retries + 1):
        settle(settle_s)
        warmups = warm_up(fn, warmup, timer.synchronize)
        if watch is not None:
            watch.start()
        samples, reason = sample_until(take_sample, criterion)
        block = watch.stop() if watch is not None else None
        if block is not None and "page_faults" in block:
            block["page_faults_per_call"] = block["page_faults"] / len(samples)
        stats = summarize(samples)
        tries.append(Measurement(cache, samples, stats, warmups, reason, criterion.converged(stats),
                                 blocks=[block] if block is not None else []))
        if not (block or {}).get("retry"):
            break
    settled = [m for m in tries if not (m.blocks and m.blocks[0].get("retry"))]  # at most the last
    kept = settled[0] if settled else max(tries, key=lambda m: m.blocks[0].get("speed") or 0.0)
    discarded = [{"median": m.stats.median, "count": m.stats.count, **m.blocks[0]} for m in tries if m is not kept]
    if discarded:
        kept.extra["discarded_blocks"] = discarded
    return kept


def measure_overhead(timer: Timer, samples: int = 2000) -> Stats:
    """The harness's own cost: a no-op timed the same way as a kernel."""
    def noop() -> None:
        return None

    return summarize([timer.time(noop) for _ in range(samples)])


def combine(measurements: list[Measurement], criterion: StoppingCriterion) -> Measurement:
    """Several rounds of the same measurement as one: samples pooled, statistics over all,
    converged only when every round and the pooled samples are."""
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
                       all(m.converged for m in measurements) and criterion.converged(stats), extra,
                       [b for m in measurements for b in m.blocks])
