"""Robust statistics over a list of samples (seconds)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Stats:
    count: int
    median: float
    mean: float
    min: float
    max: float
    stddev: float
    q1: float
    q3: float
    iqr: float
    rel_noise: float  # IQR / median: the spread the sampler drives below its target

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(samples) -> Stats:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("samples must be a non-empty 1-D sequence")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite")
    q1, median, q3 = (float(v) for v in np.percentile(x, [25, 50, 75]))
    iqr = q3 - q1
    return Stats(
        count=int(x.size),
        median=median,
        mean=float(x.mean()),
        min=float(x.min()),
        max=float(x.max()),
        stddev=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        q1=q1,
        q3=q3,
        iqr=iqr,
        rel_noise=iqr / median if median > 0 else float("inf"),
    )
