"""The measurement core: timers, sampling to a noise target, robust statistics."""

from .runner import Measurement, Settings, combine, measure, measure_overhead
from .stats import Stats, summarize
from .timer import HostTimer, Timer

__all__ = ["HostTimer", "Measurement", "Settings", "Stats", "Timer", "measure", "measure_overhead", "summarize"]
