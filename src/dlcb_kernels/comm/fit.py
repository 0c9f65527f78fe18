"""α-β (Hockney) fits of measured collective times, and how well they predict them.

A collective of n bytes over p ranks is modelled as t(n) = a + b·n. The fit minimises the
squared *relative* error, Σ((a + b·n)/t − 1)², so an 8-byte message weighs as much as a 64 MiB
one (ordinary least squares would fit the large messages only). a and b are then read as the
link parameters of the scaling predictor's model: a = steps·α and b = factor/β, with the steps
of the textbook algorithm (ring: 2(p−1) for all-reduce, p−1 for all-gather and reduce-scatter;
binomial tree: ⌈log₂p⌉ for broadcast) and the nccl-tests bus factor, so β is the asymptotic bus
bandwidth and `scaling.allreduce_seconds(n, p, ring)` gives back a + b·n at the measured p.

MPI libraries switch algorithm and protocol with the message size (eager vs rendezvous, recursive
doubling vs ring), so one line cannot follow every size. The fit also splits the size range into
up to three contiguous regimes, each with its own a and b, choosing the split by dynamic
programming and the number of regimes by the Bayesian information criterion (fewer regimes
unless more explain clearly more). Both fits report their error in-sample and leave-one-out (each
size predicted by a fit that did not see it), the honest figure for sizes between those measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .collectives import bus_factor, model_steps

MAX_REGIMES = 3
MIN_POINTS_PER_REGIME = 3
RESOLUTION = 1e-4              # relative error below which a fit counts as exact


@dataclass(frozen=True)
class Line:
    """t = latency_s + seconds_per_byte·n, fitted on sizes min_bytes..max_bytes."""

    latency_s: float
    seconds_per_byte: float
    min_bytes: float
    max_bytes: float

    def predict(self, nbytes):
        return self.latency_s + self.seconds_per_byte * np.asarray(nbytes, dtype=np.float64)

    @classmethod
    def from_entry(cls, entry: dict) -> Line:
        """A regime entry of a table's fit ({latency_s, seconds_per_byte, min_bytes, max_bytes})."""
        return cls(entry["latency_s"], entry["seconds_per_byte"], entry["min_bytes"], entry["max_bytes"])


def fit_line(nbytes, seconds) -> Line:
    """The relative-error least-squares line through the points, with a >= 0 and b >= 0."""
    n = np.asarray(nbytes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    if n.ndim != 1 or n.shape != t.shape or n.size < 2:
        raise ValueError("need at least two (nbytes, seconds) points of equal length")
    if not (np.all(np.isfinite(t)) and np.all(t > 0) and np.all(n >= 0)):
        raise ValueError("times must be positive and finite, sizes non-negative")
    # Rows scaled by 1/t: minimising ‖[1/t, n/t]·[a, b] − 1‖² is the relative-error fit.
    x = np.column_stack([1.0 / t, n / t])
    (a, b), *_ = np.linalg.lstsq(x, np.ones_like(t), rcond=None)
    if a < 0:
        a, b = 0.0, float(np.sum(n / t) / np.sum((n / t) ** 2))
    if b < 0:
        a, b = float(np.sum(1 / t) / np.sum(1 / t ** 2)), 0.0
    return Line(float(a), float(b), float(n.min()), float(n.max()))


def relative_errors(predict, nbytes, seconds) -> np.ndarray:
    """(predicted − measured) / measured, per point."""
    t = np.asarray(seconds, dtype=np.float64)
    return (np.asarray(predict(nbytes), dtype=np.float64) - t) / t


def regime_boundaries(spans) -> list[float]:
    """Where each regime hands over to the next, for regimes measured over the (min_bytes,
    max_bytes) spans in size order: the geometric mean of one's largest size and the next one's
    smallest."""
    return [math.sqrt(high * low) for (_, high), (low, _) in zip(spans, spans[1:])]


@dataclass(frozen=True)
class Regimes:
    """Contiguous size ranges, each with its own line; sizes between two ranges take the line
    of the nearer one on a log scale, sizes outside all of them the nearest end's line."""

    lines: tuple[Line, ...]

    def boundaries(self) -> list[float]:
        return regime_boundaries([(line.min_bytes, line.max_bytes) for line in self.lines])

    @classmethod
    def from_entries(cls, entries: list[dict]) -> Regimes:
        """The regimes of a table's fit entry (its "regimes" list)."""
        return cls(tuple(Line.from_entry(entry) for entry in entries))

    def predict(self, nbytes):
        n = np.asarray(nbytes, dtype=np.float64)
        index = np.searchsorted(np.asarray(self.boundaries()), n, side="right")
        latency = np.array([line.latency_s for line in self.lines])[index]
        per_byte = np.array([line.seconds_per_byte for line in self.lines])[index]
        return latency + per_byte * n


def _segment_cost(n, t) -> float:
    return float(np.sum(relative_errors(fit_line(n, t).predict, n, t) ** 2))


def fit_regimes(nbytes, seconds, max_regimes: int = MAX_REGIMES,
                min_points: int = MIN_POINTS_PER_REGIME) -> Regimes:
    """The best split of the sorted points into 1..max_regimes lines (see the module docstring)."""
    order = np.argsort(np.asarray(nbytes, dtype=np.float64), kind="stable")
    n = np.asarray(nbytes, dtype=np.float64)[order]
    t = np.asarray(seconds, dtype=np.float64)[order]
    count = n.size
    if count < 2:
        raise ValueError("need at least two points")
    min_points = max(2, min_points)
    cost = {(i, j): _segment_cost(n[i:j], t[i:j])
            for i in range(count) for j in range(i + min_points, count + 1)}
    # best[k][j]: least cost of the first j points in k regimes, and where the last one starts.
    best = [{0: (0.0, None)}]
    for k in range(1, max_regimes + 1):
        row = {}
        for j in range(k * min_points, count + 1):
            options = [(best[k - 1][i][0] + cost[(i, j)], i) for i in best[k - 1] if (i, j) in cost]
            if options:
                row[j] = min(options)
        best.append(row)

    def bic(k: int) -> float:
        # Below 0.01 % RMS relative error the differences are rounding, not a better model.
        rss = max(best[k][count][0], count * RESOLUTION ** 2)
        return count * math.log(rss / count) + (3 * k - 1) * math.log(count)

    candidates = [k for k in range(1, max_regimes + 1) if count in best[k]]
    chosen = min(candidates, key=lambda k: (bic(k), k))
    cuts, j = [], count
    for k in range(chosen, 0, -1):
        i = best[k][j][1]
        cuts.append((i, j))
        j = i
    return Regimes(tuple(fit_line(n[i:j], t[i:j]) for i, j in reversed(cuts)))


def error_summary(errors) -> dict:
    e = np.abs(np.asarray(errors, dtype=np.float64))
    return {"points": int(e.size), "max": float(e.max()), "median": float(np.median(e)),
            "mean": float(e.mean()), "within_10pct": float(np.mean(e <= 0.10))}


def leave_one_out(nbytes, seconds, fitter) -> np.ndarray:
    """Each point's relative error under a fit made without it."""
    n = np.asarray(nbytes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    errors = []
    for i in range(n.size):
        keep = np.arange(n.size) != i
        model = fitter(n[keep], t[keep])
        errors.append(float(relative_errors(model.predict, n[i:i + 1], t[i:i + 1])[0]))
    return np.asarray(errors)


def _link(line: Line, collective: str, ranks: int) -> dict:
    """The line as the link α (per step) and β (bus bandwidth) of the textbook algorithm."""
    steps, _ = model_steps(collective, ranks)
    factor = bus_factor(collective, ranks)
    beta = factor / line.seconds_per_byte if line.seconds_per_byte > 0 and factor > 0 else None
    return {"latency_s": line.latency_s, "seconds_per_byte": line.seconds_per_byte,
            "alpha_s": line.latency_s / steps, "beta_bytes_per_s": beta,
            "min_bytes": int(line.min_bytes), "max_bytes": int(line.max_bytes)}


def fit_collective(entries: list[dict], collective: str, backend: str, ranks: int,
                   min_bytes: int, max_bytes: int) -> dict | None:
    """The fit entry of one collective, backend and rank count over the sizes min..max bytes,
    from the ok measurement entries; None when fewer than four sizes are there (or p = 1, where
    nothing crosses a link)."""
    points = sorted((e["nbytes"], e["stats"]["median"]) for e in entries
                    if e.get("status") == "ok" and e["collective"] == collective and e.get("backend") == backend
                    and e["ranks"] == ranks and min_bytes <= e["nbytes"] <= max_bytes)
    if ranks < 2 or len(points) < 4:
        return None
    n = np.array([p[0] for p in points], dtype=np.float64)
    t = np.array([p[1] for p in points], dtype=np.float64)
    line = fit_line(n, t)
    regimes = fit_regimes(n, t)
    steps, algorithm = model_steps(collective, ranks)
    link = _link(line, collective, ranks)
    return {
        "collective": collective, "backend": backend, "ranks": ranks,
        "model": f"{algorithm}: t = {steps}·α + {bus_factor(collective, ranks):.4g}·n/β",
        "fit_range_bytes": [int(min_bytes), int(max_bytes)],
        **link,
        "errors": {"in_sample": error_summary(relative_errors(line.predict, n, t)),
                   "leave_one_out": error_summary(leave_one_out(n, t, fit_line))},
        "regimes": [_link(r, collective, ranks) for r in regimes.lines],
        "regime_errors": {"in_sample": error_summary(relative_errors(regimes.predict, n, t)),
                          "leave_one_out": error_summary(leave_one_out(n, t, fit_regimes))},
    }
