"""The measurement core: timers, the one sampling loop with its stopping criteria, robust
statistics, and how busy the machine is with other work."""

from . import contention
from .harness import (
    FixedRepeats,
    Measurement,
    NoiseTarget,
    Settings,
    StoppingCriterion,
    Warmup,
    combine,
    measure,
    measure_overhead,
    sample_until,
    settle,
    warm_up,
)
from .stats import Stats, summarize
from .timer import HostTimer, Timer

__all__ = ["FixedRepeats", "HostTimer", "Measurement", "NoiseTarget", "Settings", "Stats", "StoppingCriterion",
           "Timer", "Warmup", "combine", "contention", "measure", "measure_overhead", "sample_until", "settle",
           "summarize", "warm_up"]
