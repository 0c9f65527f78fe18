"""The measurement core: timers, sampling to a noise target, robust statistics, and how busy
the machine is with other work."""

from . import contention
from .runner import Measurement, Settings, combine, measure, measure_overhead
from .stats import Stats, summarize
from .timer import HostTimer, Timer

__all__ = ["HostTimer", "Measurement", "Settings", "Stats", "Timer", "contention", "measure", "measure_overhead",
           "summarize"]
