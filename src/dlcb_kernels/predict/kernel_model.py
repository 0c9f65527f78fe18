"""Per-kernel time from a device's throughput table: exact record, fitted efficiency, or roofline.

A ThroughputModel holds the usable records of one device, dtype and implementation choice
(status ok, warm cache). predict(problem) answers, in this order:

  exact     a record of the very problem (same op and params): its median time.
  fitted    an efficiency model of the problem's group (op and direction) over the table's
            records. Efficiency = achieved GFLOP/s / roofline, roofline = min(peak, AI x
            bandwidth) with the device's measured peak and memory bandwidth, so the fit only has
            to learn how far below the physical limit a shape runs, which varies smoothly with
            the shape. Candidates on log-efficiency over standardized log shape features, per
            group: distance-weighted k nearest neighbours (k by leave-one-out), ridge regression
            with squares and pairwise products of the continuous features (penalty by
            closed-form leave-one-out), the mean of those two, and a constant (the group's
            geometric-mean efficiency). The one with the lowest leave-one-out mean |log error|
            on the group predicts; its leave-one-out 90th percentile of |relative error| is the
            stated uncertainty. Beyond the records' range of a feature the shape is pulled back
            to the range's edge (a polynomial extrapolates badly), the prediction says so, and
            its uncertainty is that of extrapolation: the 90th percentile of the leave-one-out
            errors of the records that, left out, were beyond the others' range themselves (at
            least three such records; else the roofline fallback's), never below the group's.
  roofline  no record of the group: roofline time / an efficiency borrowed from the table (the
            median of the op's other directions, else of all records), with a large stated
            uncertainty.

Memory-bound layer calls (op "memory", MemoryProblem) are not kernels with an efficiency
against the roofline: their time is a framework call's fixed cost plus bytes at the rate that
kind of layer reaches. predict(MemoryProblem) answers with the exact record if present; else
fitted, t = a + bytes / b (+ work / w for pooling's window reads and dropout's branch misses,
MemoryTimeFit) by least squares on the relative error over the records of the same kind,
direction, training flag, pooling mode and activation function (terms >= 0; one record: its
time scaled by bytes, +-50%); else "memory", bytes at the measured bandwidth (memory_seconds).
Memory records take no part in the kernel fits nor in cross_validate.

First touch: a CPU call that allocates its output pays for every fresh page it writes (a page
fault and the page zeroed), and on a shared VM that cost per page moves by several times within
an hour. Records say how many pages a call faulted and what a fresh page cost around their
samples (conditions page_faults_per_call, first_touch_s_per_page). Given `first_touch` (seconds
a page now, measured as the records' was: measure.monitor.FirstTouchProbe), an exact record's
time is moved by faults x (now - then), and the prediction says so; fitted and roofline
predictions are not (the faults of a problem never measured are unknown).

Uncertainties are relative (0.1: the time is expected within about +-10%), meant as a 90th
percentile, not a standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import allocator_policy, devices
from ..problems import DTYPES, problem_from_params
from ..results import Record, Table

SOURCES = ("exact", "fitted", "roofline")
PROVIDER_SELECTIONS = ("best", "ours", "vendor")

# A single round of samples sees no drift between runs: an exact record is trusted to no better
# than this, half that where several alternating rounds were pooled.
EXACT_UNCERTAINTY_FLOOR = 0.02
# A group of one record has no leave-one-out error to state.
SINGLE_RECORD_UNCERTAINTY = 0.5
# Extrapolation errors are stated from the records at a range's edge when there are this many.
MIN_EDGE_RECORDS = 3
# Roofline fallbacks: an efficiency borrowed from the op's other directions, or from other ops.
ROOFLINE_UNCERTAINTY_SAME_OP = 0.5
ROOFLINE_UNCERTAINTY_OTHER_OP = 1.0
# Memory-bound layers seldom run at the triad/copy bandwidth exactly (small tensors stay in
# cache, framework kernels fall short of STREAM).
MEMORY_UNCERTAINTY = 0.3
MEMORY_OP = "memory"
OVERHEAD_OP = "overhead"   # framework overhead records (OverheadProblem): per call, not fitted

# What the table's times hold, by the C allocator it was measured under (allocator_policy).
_ALLOCATOR_TEXT = {"steady": "measured under the steady allocator (no page faults after the warm-up)",
                   "system": "measured under the system allocator (its calls' page faults, where they took any)"}

_KNN_CHOICES = (1, 2, 3, 4, 6, 8)
_RIDGE_PENALTIES = tuple(10.0 ** e for e in np.arange(-3.0, 3.01, 0.5))


@dataclass(frozen=True)
class KernelPrediction:
    seconds: float
    source: str                      # "exact", "fitted" or "roofline"
    uncertainty: float               # relative, about a 90th percentile of |error|
    implementation: str | None       # the record's, or the implementations the fit covers
    detail: str


# Shape features -----------------------------------------------------------------------------------

def group_of(problem) -> tuple[str, str]:
    """(op, direction): the problems one efficiency model covers (GEMM has no direction)."""
    return problem.op, getattr(problem, "direction", "-")


def work_flops(problem) -> float:
    """Every FLOP the kernel does: an RNN's flops_full also counts the input projection."""
    return float(problem.flops_full() if hasattr(problem, "flops_full") else problem.flops())


def _features(problem) -> tuple[list[float], list[float]]:
    """(continuous log features, binary/categorical features) of a problem."""
    flops = work_flops(problem)
    head = [math.log(flops), math.log(flops / problem.bytes_min())]
    if problem.op == "gemm":
        return head + [math.log(problem.m), math.log(problem.n), math.log(problem.k)], \
            [float(problem.trans_a), float(problem.trans_b)]
    if problem.op == "conv":
        per_group = problem.c // problem.groups
        # The output row's width on its own: direct convolutions keep a row's outputs in
        # registers, and a row one pixel wide (a kernel as wide as its input, as text CNNs' over
        # word embeddings) ran at a third of the rate of the same work with rows 59 wide; and
        # input channels per group, since a single one takes another code path than many.
        return head + [math.log(problem.n * problem.p * problem.q), math.log(problem.q), math.log(problem.k),
                       math.log(per_group * problem.r * problem.s), math.log(per_group), math.log(problem.r * problem.s),
                       math.log(problem.groups),
                       float(max(problem.stride_h, problem.stride_w))], \
            [float(problem.layout == "NHWC")]
    if problem.op == "rnn":
        return head + [math.log(problem.hidden), math.log(problem.batch), math.log(problem.timesteps),
                       math.log(problem.inputs_per_step), math.log(problem.gates)], []
    raise ValueError(f"problem op must be gemm, conv or rnn; got {problem.op!r}")


_FEATURE_NAMES = {
    "gemm": ["FLOPs", "intensity", "m", "n", "k", "trans_a", "trans_b"],
    "conv": ["FLOPs", "intensity", "N*P*Q", "Q", "K", "C*R*S/groups", "C/groups", "R*S", "groups", "stride", "NHWC"],
    "rnn": ["FLOPs", "intensity", "hidden", "batch", "timesteps", "input size", "gates"],
}


def _feature_row(problem) -> np.ndarray:
    continuous, binary = _features(problem)
    return np.array(continuous + binary, dtype=np.float64)


def _n_continuous(problem) -> int:
    return len(_features(problem)[0])


# Regressors on log-efficiency --------------------------------------------------------------------

class _Standardizer:
    """Scales columns to unit variance around their mean; constant columns are dropped."""

    def __init__(self, x: np.ndarray):
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.keep = std > 1e-9
        self.std = np.where(self.keep, std, 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std)[:, self.keep]


class _Constant:
    name = "constant"

    def __init__(self, x, y, n_cont):
        self.value = float(y.mean())

    def predict(self, x):
        return np.full(len(x), self.value)

    @staticmethod
    def loo(x, y, n_cont):
        n = len(y)
        return (y.sum() - y) / (n - 1)


class _Knn:
    """Inverse-square-distance weighted mean of the k nearest records (standardized features)."""

    name = "knn"

    def __init__(self, x, y, n_cont):
        self.scale = _Standardizer(x)
        self.z = self.scale(x)
        self.y = y
        self.k = self._best_k(self.z, y)[0]

    @staticmethod
    def _weighted(dist: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
        k = min(k, dist.shape[1])
        nearest = np.argsort(dist, axis=1)[:, :k]
        d = np.take_along_axis(dist, nearest, axis=1)
        w = 1.0 / (d * d + 1e-12)
        return (w * y[nearest]).sum(axis=1) / w.sum(axis=1)

    @classmethod
    def _loo_all(cls, z, y):
        dist = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(axis=2))
        np.fill_diagonal(dist, np.inf)
        return {k: cls._weighted(dist, y, k) for k in _KNN_CHOICES if k <= len(y) - 1}

    @classmethod
    def _best_k(cls, z, y):
        preds = cls._loo_all(z, y)
        k = min(preds, key=lambda k: np.abs(preds[k] - y).mean())
        return k, preds[k]

    def predict(self, x):
        z = self.scale(x)
        dist = np.sqrt(((z[:, None, :] - self.z[None, :, :]) ** 2).sum(axis=2))
        return self._weighted(dist, self.y, self.k)

    @classmethod
    def loo(cls, x, y, n_cont):
        return cls._best_k(_Standardizer(x)(x), y)[1]


class _Ridge:
    """Ridge regression on standardized features, their squares and pairwise products (the
    continuous ones), intercept unpenalized; the penalty minimizes the closed-form
    leave-one-out error."""

    name = "ridge"

    def __init__(self, x, y, n_cont):
        self.n_cont = n_cont
        self.scale = _Standardizer(x)
        self.coef, _ = self._solve_best(self._design(self.scale, n_cont, x), y)

    @staticmethod
    def _design(scale: _Standardizer, n_cont: int, x: np.ndarray) -> np.ndarray:
        z = (x - scale.mean) / scale.std
        cont = z[:, :n_cont][:, scale.keep[:n_cont]]
        binary = z[:, n_cont:][:, scale.keep[n_cont:]]
        i, j = np.triu_indices(cont.shape[1])
        return np.hstack([np.ones((len(x), 1)), cont, binary, cont[:, i] * cont[:, j]])

    @staticmethod
    def _solve_best(design, y):
        """(coefficients, leave-one-out predictions) at the penalty with the lowest mean
        |leave-one-out residual| (residual / (1 - leverage), exact for a linear smoother)."""
        penalty = np.eye(design.shape[1])
        penalty[0, 0] = 0.0
        best = None
        for lam in _RIDGE_PENALTIES:
            inverse = np.linalg.pinv(design.T @ design + lam * penalty)
            coef = inverse @ design.T @ y
            leverage = np.einsum("ij,jk,ik->i", design, inverse, design)
            residual = (y - design @ coef) / np.maximum(1.0 - leverage, 1e-6)
            score = np.abs(residual).mean()
            if best is None or score < best[0]:
                best = (score, coef, y - residual)
        return best[1], best[2]

    def predict(self, x):
        return self._design(self.scale, self.n_cont, x) @ self.coef

    @classmethod
    def loo(cls, x, y, n_cont):
        return cls._solve_best(cls._design(_Standardizer(x), n_cont, x), y)[1]


class _KnnRidgeMean:
    """The mean of the two: the neighbours' local detail and the regression's trend, each
    damping the other's misses."""

    name = "mean of knn and ridge"

    def __init__(self, x, y, n_cont):
        self.parts = (_Knn(x, y, n_cont), _Ridge(x, y, n_cont))

    def predict(self, x):
        return sum(part.predict(x) for part in self.parts) / 2

    @staticmethod
    def loo(x, y, n_cont):
        return (_Knn.loo(x, y, n_cont) + _Ridge.loo(x, y, n_cont)) / 2


_REGRESSORS = (_Constant, _Knn, _Ridge, _KnnRidgeMean)


@dataclass
class _GroupModel:
    """The chosen regressor of one (op, direction) group and its leave-one-out error."""

    regressor: object
    method: str
    uncertainty: float
    bounds: tuple[float, float]          # log-efficiency predictions are clamped to these
    feature_range: tuple[np.ndarray, np.ndarray]
    count: int
    loo_median: float | None
    uncertainty_beyond: float = SINGLE_RECORD_UNCERTAINTY   # for a shape beyond the records' range

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, n_cont: int) -> _GroupModel:
        # Efficiency <= 1 against the roofline, except where the table itself measured more (a
        # warm-cache problem whose operands fit in cache beats the DRAM roofline; a Winograd
        # convolution beats the direct algorithm's FLOP count). And no lower than the group's
        # lowest.
        bounds = (float(y.min()), max(0.0, float(y.max())))
        feature_range = (x.min(axis=0), x.max(axis=0))
        if len(y) == 1:
            return cls(_Constant(x, y, n_cont), "constant (one record)", SINGLE_RECORD_UNCERTAINTY, bounds,
                       feature_range, 1, None)
        best = None
        for regressor in _REGRESSORS:
            if regressor in (_Ridge, _KnnRidgeMean) and len(y) < 4:
                continue
            loo = np.clip(regressor.loo(x, y, n_cont), *bounds)
            score = float(np.abs(loo - y).mean())
            if best is None or score < best[0]:
                best = (score, regressor, loo)
        _, regressor, loo = best
        rel = np.abs(np.exp(y - loo) - 1.0)   # time ratio pred/meas - 1 = eff_meas/eff_pred - 1
        uncertainty = max(float(np.quantile(rel, 0.9)), EXACT_UNCERTAINTY_FLOOR)
        # A record that, left out, lies beyond the others' range in some feature was predicted
        # by extrapolation: those errors, not the group's, say how far a shape beyond the table
        # can be off. Too few of them to tell: the roofline fallback's uncertainty.
        edge = rel[_edge_records(x)]
        beyond = float(np.quantile(edge, 0.9)) if len(edge) >= MIN_EDGE_RECORDS else ROOFLINE_UNCERTAINTY_SAME_OP
        return cls(regressor(x, y, n_cont), regressor.name, uncertainty, bounds, feature_range, len(y),
                   float(np.median(rel)), max(uncertainty, beyond))

    def log_efficiency(self, row: np.ndarray) -> float:
        # Beyond the records a polynomial runs away: the shape is pulled back to the edge of the
        # records' range, i.e. efficiency is held at what the nearest measured shapes reach.
        inside = np.clip(row, *self.feature_range)
        return float(np.clip(self.regressor.predict(inside[None, :])[0], *self.bounds))

    def outside(self, row: np.ndarray, names: list[str]) -> list[str]:
        """The features of `row` beyond the range of the group's records."""
        low, high = self.feature_range
        return [name for name, value, lo, hi in zip(names, row, low, high) if not lo - 1e-9 <= value <= hi + 1e-9]


def _edge_records(x: np.ndarray) -> np.ndarray:
    """Which rows hold a feature's value alone beyond every other row's (the lone minimum or
    maximum of a column): left out, they are outside the rest's range."""
    edge = np.zeros(len(x), dtype=bool)
    if len(x) < 2:
        return edge
    for column in x.T:
        order = np.argsort(column, kind="stable")
        if column[order[-1]] > column[order[-2]] + 1e-9:
            edge[order[-1]] = True
        if column[order[0]] < column[order[1]] - 1e-9:
            edge[order[0]] = True
    return edge


# The model ------------------------------------------------------------------------------------------

@dataclass
class _Entry:
    """One usable record: its problem, time and efficiency against the roofline."""

    record: Record
    problem: object
    seconds: float
    log_efficiency: float
    features: np.ndarray = field(repr=False)


class ThroughputModel:
    """Kernel times for one device, dtype and implementation choice of a throughput table.

    impl: "best" (per problem the fastest record of any implementation), "ours" / "vendor" (the
    fastest of that provider), or one implementation, by full name ("gemm/cpu/numpy") or by
    variant ("numpy", which names it for every op).
    """

    def __init__(self, table_doc: dict, *, device_id: str | None = None, impl: str = "best",
                 dtype: str = "float32", first_touch: float | None = None):
        if not isinstance(table_doc, dict):
            raise TypeError(f"table_doc must be a dict (a loaded table), got {type(table_doc).__name__}")
        table = Table.from_json(table_doc)
        self.allocator = allocator_policy.table_state(table_doc)
        if device_id is not None and not isinstance(device_id, str):
            raise TypeError(f"device_id must be a str or None, got {type(device_id).__name__}")
        if not isinstance(impl, str):
            raise TypeError(f"impl must be a str, got {type(impl).__name__}")
        if not impl:
            raise ValueError("impl must be best, ours, vendor or an implementation name; got ''")
        if not isinstance(dtype, str):
            raise TypeError(f"dtype must be a str, got {type(dtype).__name__}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
        if first_touch is not None and (isinstance(first_touch, bool) or not isinstance(first_touch, (int, float))
                                        or not 0 <= first_touch < 1e-3):
            raise ValueError(f"first_touch must be seconds per page in [0, 1e-3), got {first_touch!r}")
        self.impl = impl
        self.dtype = dtype
        self.first_touch = first_touch
        self.device = self._find_device(table_doc, device_id)
        self.device_id = self.device["id"]
        chosen = self._select(table)
        try:
            self.peak_gflops, self.peak_label = devices.peak_for(self.device, dtype, "measured")
        except ValueError as exc:
            raise ValueError(f"device {self.device_id}: {exc}") from None
        self.bandwidth_gbs, self.bandwidth_label = self._bandwidth(self.device)
        # The runner's framework overhead: seconds per layer call and per parameter tensor of a step
        self.overhead = {(r.params["kind"], bool(r.params["training"])): r.median / r.params["calls"]
                         for r in chosen if r.op == OVERHEAD_OP}
        entries = [self._entry(record) for record in chosen if record.op != OVERHEAD_OP]
        self.entries = [e for e in entries if e.problem.op != MEMORY_OP]
        self.memory_entries = [e for e in entries if e.problem.op == MEMORY_OP]
        # keyed by the problem's own params, so a record written before a field existed still matches
        self._exact = {problem_key(e.problem): e for e in entries}
        self._memory_groups: dict[tuple, list[_Entry]] = {}
        for entry in self.memory_entries:
            self._memory_groups.setdefault(memory_group_of(entry.problem), []).append(entry)
        self._memory_fits: dict[tuple, MemoryTimeFit] = {}
        self._groups: dict[tuple[str, str], list[_Entry]] = {}
        for entry in self.entries:
            self._groups.setdefault(group_of(entry.problem), []).append(entry)
        self._fits: dict[tuple[str, str], _GroupModel] = {}
        self.conv_layouts = frozenset(e.problem.layout for e in self.entries if e.problem.op == "conv")

    # Construction ---------------------------------------------------------------------------------

    @staticmethod
    def _find_device(doc: dict, device_id: str | None) -> dict:
        if not doc["devices"]:
            raise ValueError("the table has no devices")
        if device_id is None:
            return doc["devices"][0]
        for device in doc["devices"]:
            if device["id"] == device_id:
                return device
        known = ", ".join(d["id"] for d in doc["devices"])
        raise ValueError(f"device {device_id!r} is not in the table; its devices: {known}")

    @staticmethod
    def _bandwidth(device: dict) -> tuple[float, str]:
        """The measured memory bandwidth: CPU STREAM triad, GPU device-to-device copy; a GPU
        without a measurement falls back to its theoretical bandwidth, and says so."""
        memory = device.get("memory") or {}
        for key, label in (("triad_gbs", "measured STREAM triad"), ("copy_gbs", "measured device copy"),
                           ("bandwidth_gbs", "theoretical (no measured bandwidth)")):
            value = memory.get(key)
            if value:
                return float(value), f"{label} {float(value):.1f} GB/s"
        raise ValueError(f"device {device['id']!r} has no memory bandwidth (memory.triad_gbs, copy_gbs or "
                         "bandwidth_gbs): re-run the benchmark with the device probes on")

    def _matches_impl(self, record: Record) -> bool:
        if self.impl == "best":
            return True
        if self.impl in ("ours", "vendor"):
            return record.provider == self.impl
        return self.impl in (record.implementation, record.variant)

    def _select(self, table: Table) -> list[Record]:
        """Per problem the fastest usable record of the chosen implementation(s)."""
        on_device = [r for r in table.records if r.device_id == self.device_id]
        usable = [r for r in on_device if r.ok and r.cache == "warm" and r.dtype == self.dtype and r.median
                  and r.params]
        chosen = [r for r in usable if self._matches_impl(r)]
        if not chosen:
            if usable and self.impl not in PROVIDER_SELECTIONS:
                names = sorted({r.implementation for r in usable})
                raise ValueError(f"impl {self.impl!r} has no records on device {self.device_id} in {self.dtype}; "
                                 f"its implementations: {', '.join(names)}")
            raise ValueError(
                f"the table has no usable records for device {self.device_id}, dtype {self.dtype}, impl "
                f"{self.impl}: {len(on_device)} records on the device, {len(usable)} of them ok, warm, "
                f"{self.dtype} and with params")
        fastest: dict[tuple, Record] = {}
        for record in chosen:
            key = (record.op, _params_key(record.params))
            if key not in fastest or record.median < fastest[key].median:
                fastest[key] = record
        return list(fastest.values())

    def _entry(self, record: Record) -> _Entry:
        problem = problem_from_params(record.op, record.params)
        seconds = float(record.median)
        efficiency = work_flops(problem) / seconds / 1e9 / self.roofline_gflops(problem)
        features = np.empty(0) if problem.op == MEMORY_OP else _feature_row(problem)
        return _Entry(record, problem, seconds, math.log(efficiency), features)

    # Roofline and memory ----------------------------------------------------------------------------

    def roofline_gflops(self, problem) -> float:
        """min(peak, arithmetic intensity x bandwidth), GFLOP/s."""
        intensity = work_flops(problem) / problem.bytes_min()
        return min(self.peak_gflops, intensity * self.bandwidth_gbs)

    def memory_seconds(self, nbytes) -> tuple[float, str]:
        """Time to move nbytes at the device's measured bandwidth."""
        if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float, np.integer, np.floating)):
            raise TypeError(f"nbytes must be a number, got {type(nbytes).__name__}")
        if not nbytes >= 0:
            raise ValueError(f"nbytes must be >= 0, got {nbytes}")
        seconds = float(nbytes) / (self.bandwidth_gbs * 1e9)
        return seconds, f"{float(nbytes) / 1e6:.3g} MB at {self.bandwidth_label}"

    # Prediction -------------------------------------------------------------------------------------

    def _check_problem(self, problem) -> None:
        if getattr(problem, "op", None) not in ("gemm", "conv", "rnn", MEMORY_OP) or not hasattr(problem, "params"):
            raise TypeError("problem must be a GemmProblem, ConvProblem, RnnProblem or MemoryProblem, got "
                            f"{type(problem).__name__}")
        if problem.dtype != self.dtype:
            raise ValueError(f"problem dtype {problem.dtype} differs from this model's {self.dtype}")

    def predict(self, problem) -> KernelPrediction:
        self._check_problem(problem)
        entry = self._exact.get(problem_key(problem))
        if entry is not None:
            return self._exact_prediction(entry)
        if problem.op == MEMORY_OP:
            return self._predict_memory(problem)
        return self._predict_from(problem, self._groups, self._fits)

    def _predict_memory(self, problem) -> KernelPrediction:
        group = memory_group_of(problem)
        members = self._memory_groups.get(group)
        nbytes = problem.bytes_min()
        if not members:
            seconds, detail = self.memory_seconds(nbytes)
            return KernelPrediction(seconds, "memory", MEMORY_UNCERTAINTY, None,
                                    f"no {' '.join(map(str, group))} records: {detail}")
        extra = problem.extra_work()   # the same kind for every problem of a group
        if group not in self._memory_fits:
            self._memory_fits[group] = MemoryTimeFit.fit(
                [e.problem.bytes_min() for e in members], [e.seconds for e in members],
                None if extra is None else [e.problem.extra_work()[1] for e in members],
                "" if extra is None else extra[0])
        fit = self._memory_fits[group]
        implementations = sorted({e.record.implementation for e in members})
        return KernelPrediction(fit.seconds(nbytes, 0 if extra is None else extra[1]), "fitted", fit.uncertainty,
                                ", ".join(implementations),
                                f"{fit.describe()} over {fit.count} {' '.join(map(str, group))} records")

    def _exact_prediction(self, entry: _Entry) -> KernelPrediction:
        record = entry.record
        rounds = record.rounds or 1
        floor = EXACT_UNCERTAINTY_FLOOR if rounds == 1 else EXACT_UNCERTAINTY_FLOOR / 2
        # Half the interquartile range: about the typical deviation of one run from the median.
        noise = record.rel_noise or 0.0
        uncertainty = max(0.5 * noise, floor)
        seconds, moved = self._at_first_touch(entry)
        return KernelPrediction(seconds, "exact", uncertainty, record.implementation,
                                f"record {record.problem!r}: median of {record.stats.count} samples, "
                                f"{rounds} round(s), IQR/median {noise:.1%}{moved}")

    def _at_first_touch(self, entry: _Entry) -> tuple[float, str]:
        """The record's time at this model's first-touch cost, and what was moved (see the
        module's docstring); unchanged without a cost or without the record's readings."""
        conditions = entry.record.conditions or {}
        faults, then = conditions.get("page_faults_per_call"), conditions.get("first_touch_s_per_page")
        if self.first_touch is None or not faults or then is None:
            return entry.seconds, ""
        # never below a tenth of the record: the fault cost is an estimate, the compute is not zero
        seconds = max(entry.seconds + faults * (self.first_touch - then), 0.1 * entry.seconds)
        return seconds, (f"; {faults:,.0f} fresh pages a call at {self.first_touch * 1e6:.2f} us a page "
                         f"(the record's: {then * 1e6:.2f} us): {(seconds - entry.seconds) * 1e3:+.3f} ms")

    def _predict_from(self, problem, groups: dict, fits: dict) -> KernelPrediction:
        group = group_of(problem)
        members = groups.get(group)
        roofline = self.roofline_gflops(problem)
        flops = work_flops(problem)
        if not members:
            return self._roofline_prediction(problem, groups, roofline, flops)
        if group not in fits:
            fits[group] = _GroupModel.fit(np.array([e.features for e in members]),
                                          np.array([e.log_efficiency for e in members]), _n_continuous(problem))
        fit = fits[group]
        row = _feature_row(problem)
        efficiency = math.exp(fit.log_efficiency(row))
        seconds = flops / (efficiency * roofline * 1e9)
        implementations = sorted({e.record.implementation for e in members})
        implementation = implementations[0] if len(implementations) == 1 else \
            f"{self.impl} of {', '.join(implementations)}"
        loo = "" if fit.loo_median is None else f", leave-one-out median error {fit.loo_median:.1%}"
        outside = fit.outside(row, _FEATURE_NAMES[problem.op])
        beyond = f"; extrapolating in {', '.join(outside)} beyond the records' range" if outside else ""
        uncertainty = fit.uncertainty_beyond if outside else fit.uncertainty
        return KernelPrediction(seconds, "fitted", uncertainty, implementation,
                                f"{fit.method} over {fit.count} {' '.join(group).rstrip(' -')} records{loo}: "
                                f"efficiency {efficiency:.3f} of roofline {roofline:.1f} GFLOP/s{beyond}")

    def _roofline_prediction(self, problem, groups: dict, roofline: float, flops: float) -> KernelPrediction:
        same_op = [e for (op, _), members in groups.items() if op == problem.op for e in members]
        borrowed = same_op or [e for members in groups.values() for e in members]
        if borrowed:
            efficiency = math.exp(float(np.median([e.log_efficiency for e in borrowed])))
            efficiency = min(efficiency, 1.0)
            origin = f"median of the table's other {problem.op} records" if same_op else "median of all its records"
        else:   # cross-validation of a table holding one record only
            efficiency, origin = 0.5, "a default, the table holding no other record"
        uncertainty = ROOFLINE_UNCERTAINTY_SAME_OP if same_op else ROOFLINE_UNCERTAINTY_OTHER_OP
        return KernelPrediction(flops / (efficiency * roofline * 1e9), "roofline", uncertainty, None,
                                f"no {' '.join(group_of(problem)).rstrip(' -')} records: roofline "
                                f"{roofline:.1f} GFLOP/s (peak {self.peak_gflops:.1f}, {self.bandwidth_label}) x "
                                f"efficiency {efficiency:.3f} ({origin})")

    # Validation -------------------------------------------------------------------------------------

    def cross_validate(self) -> list[dict]:
        """Leave-one-out: every record predicted by the model fitted without it (and without any
        other record of its problem, which the selection already keeps to one)."""
        rows = []
        for entry in self.entries:
            group = group_of(entry.problem)
            groups = dict(self._groups)
            groups[group] = [e for e in groups[group] if e is not entry]
            prediction = self._predict_from(entry.problem, groups, {})
            rows.append({
                "key": entry.record.problem, "op": entry.problem.op, "direction": group[1],
                "implementation": entry.record.implementation, "measured_s": entry.seconds,
                "predicted_s": prediction.seconds, "source": prediction.source,
                "rel_error": (prediction.seconds - entry.seconds) / entry.seconds,
            })
        return rows

    def describe(self) -> str:
        touch = "" if self.first_touch is None else \
            f"; exact records moved to a first touch of {self.first_touch * 1e6:.2f} us a page"
        return (f"device {self.device_id} ({self.device.get('name')}), {self.dtype}, impl {self.impl}: "
                f"{len(self.entries)} problems; peak {self.peak_gflops:.1f} GFLOP/s ({self.peak_label}), "
                f"memory {self.bandwidth_label}{touch}; {_ALLOCATOR_TEXT[self.allocator]}")


def memory_group_of(problem) -> tuple:
    """The memory problems one time model covers: kind, direction, training flag, pool mode,
    activation function."""
    return (problem.kind, problem.direction, "train" if problem.training else "infer") + \
        ((problem.mode,) if problem.kind == "pool" else ()) + \
        ((problem.function,) if problem.kind == "activation" else ())


@dataclass(frozen=True)
class MemoryTimeFit:
    """t = a + bytes / b (+ work / w where the kind does work beyond its bytes,
    MemoryProblem.extra_work): a a call's fixed cost, b the rate the layer kind moves bytes at,
    w the rate of its extra work (all terms >= 0). A pooling call's time follows its window
    reads as much as its bytes: PyTorch's CPU max-pool forward visits 0.6 G elements/s here
    (3x3/1 reads 9 elements an output, 3x3/2 2.25 an input), so bytes alone mispredict 3x3/1
    pools from 2x2/2 ones by 60% (leave-one-out); a training dropout's time follows its
    mispredicted keep/drop branches (rate 0.5 cost 1.9x rate 0.1 on one tensor)."""

    fixed_s: float
    bytes_per_s: float                   # math.inf: no byte term
    uncertainty: float
    count: int
    work_per_s: float | None = None      # None: the kind has no extra work term
    work_name: str = ""

    @classmethod
    def fit(cls, nbytes, seconds, work=None, work_name: str = "work") -> "MemoryTimeFit":
        """Least squares on the relative error (every record weighs alike, small or large), the
        terms kept non-negative. One record: its time scaled by bytes, with
        SINGLE_RECORD_UNCERTAINTY; two: no error to state beyond that either; three or more:
        the leave-one-out 90th percentile. work: the records' extra work, a third term."""
        b = np.asarray(nbytes, dtype=np.float64)
        t = np.asarray(seconds, dtype=np.float64)
        if len(b) != len(t) or not len(b):
            raise ValueError("nbytes and seconds must be non-empty and of the same length")
        if np.any(b <= 0) or np.any(t <= 0):
            raise ValueError("nbytes and seconds must be > 0")
        columns = [np.ones_like(b), b]
        if work is not None:
            extra = np.asarray(work, dtype=np.float64)
            if extra.shape != b.shape or np.any(extra < 0):
                raise ValueError("work must be >= 0, one per record")
            columns.append(extra)
        x = np.column_stack(columns)
        coefficients = cls._solve(x, t)
        uncertainty = SINGLE_RECORD_UNCERTAINTY
        if len(b) >= 3:
            errors = []
            for i in range(len(b)):
                keep = np.arange(len(b)) != i
                errors.append(abs(float(x[i] @ cls._solve(x[keep], t[keep])) / t[i] - 1.0))
            uncertainty = max(float(np.quantile(errors, 0.9)), EXACT_UNCERTAINTY_FLOOR)
        rate = [1.0 / float(c) if c > 0 else math.inf for c in coefficients[1:]]
        return cls(float(coefficients[0]), rate[0], uncertainty, len(b),
                   rate[1] if len(rate) > 1 else None, work_name if len(rate) > 1 else "")

    @staticmethod
    def _solve(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Coefficients c >= 0 minimizing sum((x_i . c / t_i - 1)^2), at least one of the terms
        that grow with size positive: the best of the unconstrained fits over subsets of the
        terms (two or three terms: every subset is tried)."""
        scaled = x / t[:, None]
        best, best_cost = None, math.inf
        n_terms = x.shape[1]
        for mask in range(1, 1 << n_terms):
            used = [j for j in range(n_terms) if mask >> j & 1]
            if used == [0] or len(used) > len(t):
                continue
            solution, *_ = np.linalg.lstsq(scaled[:, used], np.ones_like(t), rcond=None)
            if np.any(solution < 0) or not np.any(solution[[k for k, j in enumerate(used) if j]] > 0):
                continue
            coefficients = np.zeros(n_terms)
            coefficients[used] = solution
            cost = float(np.sum((scaled @ coefficients - 1.0) ** 2))
            if cost < best_cost * (1.0 - 1e-9) - 1e-15:   # a tie keeps the earlier subset (bytes first)
                best, best_cost = coefficients, cost
        if best is None:   # every record the same size and no feasible subset: proportional to bytes
            best = np.zeros(n_terms)
            best[1] = float(np.sum(scaled[:, 1]) / np.sum(scaled[:, 1] ** 2))
        return best

    def seconds(self, nbytes: float, work: float = 0.0) -> float:
        extra = float(work) / self.work_per_s if self.work_per_s else 0.0
        return self.fixed_s + float(nbytes) / self.bytes_per_s + extra

    def describe(self) -> str:
        text = f"t = {self.fixed_s * 1e6:.3g} us + bytes / {self.bytes_per_s / 1e9:.3g} GB/s"
        if self.work_per_s is not None:
            text += f" + {self.work_name} / {self.work_per_s / 1e9:.3g} G/s"
        return text


def problem_key(problem) -> tuple:
    """What matches a record to a problem: the op and the problem's own params (normalized by
    the problem type, so a record written before a field existed still matches)."""
    return problem.op, _params_key(problem.params())


def _params_key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def summarize_cross_validation(rows: list[dict]) -> dict:
    """{op or "all": {"count", "median", "p90"}} of |rel_error|."""
    if not isinstance(rows, list):
        raise TypeError(f"rows must be a list, got {type(rows).__name__}")
    by_op: dict[str, list[float]] = {}
    for row in rows:
        by_op.setdefault(row["op"], []).append(abs(row["rel_error"]))
        by_op.setdefault("all", []).append(abs(row["rel_error"]))
    return {op: {"count": len(errors), "median": float(np.median(errors)), "p90": float(np.quantile(errors, 0.9))}
            for op, errors in by_op.items()}


def format_cross_validation(rows: list[dict]) -> str:
    summary = summarize_cross_validation(rows)
    lines = [f"{'op':<6} {'records':>7} {'median |err|':>13} {'p90 |err|':>10}"]
    for op in sorted(summary, key=lambda op: (op == "all", op)):
        s = summary[op]
        lines.append(f"{op:<6} {s['count']:>7} {s['median']:>13.1%} {s['p90']:>10.1%}")
    return "\n".join(lines)
