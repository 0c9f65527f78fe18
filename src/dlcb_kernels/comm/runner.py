"""Timing one collective across the ranks of a job.

The result is checked first (exact, on every rank, the worst rank decides), then timed. A
sample is: all ranks leave a barrier, each times k back-to-back collectives, and the sample is
the slowest rank's time per collective (an all-reduce of the per-rank times with MAX), since a
collective is only done when its last rank is. k is chosen once so a sample lasts about
`sample_time`, which amortises the few microseconds by which ranks leave the barrier apart.

The sampling is the package's one measurement loop (measure.harness: warm-up, then samples until
a NoiseTarget stops), fed the slowest-rank samples. Every rank sees the same samples, so every
rank takes the same decision to stop (noise target, time or sample budget) without another
message. After timing the result is
checked again. A watchdog aborts the job if one size takes longer than its deadline.

With several rounds (the whole sweep again, in the opposite order each time) a collective's
samples are pooled: a slow spell of the machine then falls on different sizes in each round
instead of bending one stretch of the curve.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..measure.harness import NoiseTarget, Warmup, sample_until, warm_up
from ..measure.stats import summarize
from ..table import finite_or_none
from .backends import Prepared
from .collectives import CommProblem, bus_factor
from .world import World


@dataclass(frozen=True)
class CommSettings:
    noise_target: float = 0.05     # IQR / median of the slowest-rank samples that stops sampling
    min_samples: int = 5
    max_samples: int = 200
    max_time: float = 1.0          # seconds of samples per size before giving up on the noise target
    sample_time: float = 0.002     # a sample lasts about this long (k collectives)
    max_iterations: int = 10000    # at most this many collectives in one sample
    warmup: int = 3                # untimed collectives before calibration (connections, pages)
    timeout_s: float = 120.0       # a size (or a rank's check-in) taking longer aborts the job

    def __post_init__(self):
        for name in ("max_time", "sample_time", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        self.criterion()  # validates the noise criterion's fields
        if self.max_iterations < 1 or self.warmup < 0:
            raise ValueError("max_iterations must be >= 1 and warmup >= 0")

    def criterion(self) -> NoiseTarget:
        """The harness's stopping criterion over the slowest-rank samples."""
        return NoiseTarget(self.noise_target, self.min_samples, 0.0, self.max_time, self.max_samples)

    def as_dict(self) -> dict:
        return {"criterion": NoiseTarget.name, **asdict(self)}


def _slowest(world: World, seconds: float) -> float:
    return float(world.allreduce_max(np.array([seconds], dtype=np.float64))[0])


def _check(world: World, problem: CommProblem, prepared: Prepared) -> float:
    """The largest |output - expected| over all ranks after one fresh collective."""
    prepared.reset()
    prepared.run(1)
    return _slowest(world, prepared.max_error(problem.expected(world.rank)))


@dataclass
class Timing:
    """One round of one collective: the check's errors and the slowest rank's samples."""

    error_before: float
    error_after: float | None = None          # None: not timed (the check before failed)
    slowest: list[float] = field(default_factory=list)   # seconds per collective, per sample
    rank_medians: list[float] = field(default_factory=list)
    iterations: int = 0
    stop_reason: str = ""


def time_collective(world: World, prepared: Prepared, problem: CommProblem, settings: CommSettings) -> Timing:
    """Checks and times one collective on every rank; every rank returns the same Timing."""
    budget = settings.timeout_s + 20 * settings.max_time
    with world.deadline(f"{problem.key()}", budget):
        timing = Timing(error_before=_check(world, problem, prepared))
        if timing.error_before != 0.0:
            return timing
        warm_up(lambda: prepared.run(1), Warmup(min_calls=settings.warmup, min_time=0.0))
        world.barrier()
        start = time.perf_counter()
        prepared.run(1)
        once = _slowest(world, time.perf_counter() - start)
        iterations = int(min(settings.max_iterations, max(1, math.ceil(settings.sample_time / max(once, 1e-9)))))
        local = []

        def slowest_rank_sample() -> float:
            world.barrier()
            start = time.perf_counter()
            prepared.run(iterations)
            mine = (time.perf_counter() - start) / iterations
            local.append(mine)
            return _slowest(world, mine)

        slowest, stop_reason = sample_until(slowest_rank_sample, settings.criterion(), calls_per_sample=iterations)
        timing.error_after = _check(world, problem, prepared)
        timing.rank_medians = world.allgather(float(np.median(local)))
    timing.slowest, timing.iterations, timing.stop_reason = slowest, iterations, stop_reason
    return timing


def make_entry(problem: CommProblem, timings: list[Timing], settings: CommSettings) -> dict:
    """The table entry of a collective from its rounds, their samples pooled."""
    entry = {"collective": problem.collective, "nbytes": problem.nbytes, "ranks": problem.ranks,
             "dtype": problem.dtype, "count": problem.count}
    errors = [t.error_before for t in timings] + [t.error_after for t in timings if t.error_after is not None]
    entry["max_error"] = finite_or_none(max(errors))
    if any(t.error_before != 0.0 for t in timings):
        entry.update(status="failed", checked="exact, on every rank, before timing",
                     reason=f"wrong result: max |error| {max(errors):g} on the worst rank")
        return entry
    slowest = [s for t in timings for s in t.slowest]
    stats = summarize(slowest)
    wrong_after = max(t.error_after for t in timings)
    entry.update({
        "status": "ok" if wrong_after == 0.0 else "failed",
        "reason": None if wrong_after == 0.0 else f"wrong result after timing: max |error| {wrong_after:g}",
        "checked": "exact, on every rank, before and after timing",
        "iterations_per_sample": timings[-1].iterations,
        "stats": {k: finite_or_none(v) for k, v in stats.as_dict().items()},
        "samples_ns": [round(s * 1e9) for s in slowest],
        "rank_medians_s": [float(np.median(per_rank)) for per_rank in zip(*(t.rank_medians for t in timings))],
        "rounds": [{"median_s": float(np.median(t.slowest)), "samples": len(t.slowest),
                    "iterations_per_sample": t.iterations, "stop_reason": t.stop_reason} for t in timings],
        "stop_reason": "; ".join(dict.fromkeys(t.stop_reason for t in timings)),
        "converged": settings.criterion().converged(stats),
        "bus_factor": bus_factor(problem.collective, problem.ranks),
        "algbw_gbs": problem.algbw(stats.median) / 1e9,
        "busbw_gbs": problem.busbw(stats.median) / 1e9,
    })
    return entry
