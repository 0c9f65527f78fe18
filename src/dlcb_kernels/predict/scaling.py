"""Scalability models: data parallelism (gradient all-reduce, overlapped with backward) and
model parallelism (SUMMA for fully connected layers), on α-β interconnect models.

Bandwidth convention. Every β here is the bandwidth one worker can send at while it receives at
the same rate: one direction of a full-duplex link. Vendors often quote the sum of both
directions (NVIDIA's NVLink "GB/s per GPU" figures are total bidirectional bandwidth); those
presets are halved, and say so. A message of n bytes costs α + n/β.

All-reduce of n bytes over p workers (α-β model):
  ring              2(p-1)α + 2((p-1)/p)·n/β       (reduce-scatter then all-gather)
  tree              2⌈log₂p⌉(α + n/β)               (binomial-tree reduce, then binomial broadcast)
  parameter server  2(α + max(p/s, 1)·n/β)          (p workers push n and pull n through s server
                                                     links, each serving n/s bytes of every worker)
and p = 1 costs nothing.

Data parallelism: T = T_compute(b) + T_comm - overlap for a per-worker batch b. With overlap the
gradients of a layer are all-reduced as soon as its backward is done (backward runs from the
last layer to the first), one bucket at a time over the link, so communication hides behind the
backward of the layers before it; the optimizer update waits for the last bucket. Efficiency:
strong scaling t₁/(p·t_p), weak scaling t₁/t_p (the cookbook's definitions).

Model parallelism: SUMMA (van de Geijn & Watts, "SUMMA: scalable universal matrix multiplication
algorithm", Concurrency: Practice and Experience 9(4), 1997) on an r×c grid for the fully connected
layer Y (b×n) = X (b×n)·W (n×n), compute 2n²b/(pγ), communication as the cookbook gives it, with
m = b (the batch rows), k = n, the output width n: (k/k_b)·[⌈log₂c⌉(α + b·k_b/r·w/β) +
⌈log₂r⌉(α + n·k_b/c·w/β)] for w bytes per word. The first term broadcasts activation panels
along process rows, the second weight panels along process columns: a 1×p grid never moves
weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

ALGORITHMS = ("ring", "tree", "ps")
SCALINGS = ("weak", "strong")


# Validation helpers ----------------------------------------------------------------------------

def _check_number(name: str, value, minimum: float | None = None, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value}")


def _check_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def _int_list(name: str, values) -> list[int]:
    values = list(values) if not isinstance(values, (str, bytes)) else None
    if not values:
        raise ValueError(f"{name} must be a non-empty list of ints")
    for value in values:
        _check_int(f"{name} entry", value)
    return values


def _grid(grid) -> tuple[int, int]:
    if not (isinstance(grid, tuple) and len(grid) == 2):
        raise TypeError(f"grid must be an (r, c) tuple, got {grid!r}")
    _check_int("grid rows", grid[0])
    _check_int("grid columns", grid[1])
    return grid


def _panel(n: int, r: int, c: int, panel: int | None) -> int:
    if panel is None:
        return max(1, n // max(r, c))
    _check_int("panel", panel)
    if panel > n:
        raise ValueError(f"panel {panel} is wider than n = {n}")
    return panel



@dataclass(frozen=True)
class Interconnect:
    """A link in the α-β model: α seconds per message, β bytes/s in one direction per worker.

    A measured link may carry regimes, ((up_to_bytes, α, β), ...) in increasing size order, the
    last up to infinity: MPI and NCCL change protocol and algorithm with the message size, and a
    fit per size range follows them (dlcb_kernels.comm.fit). A message takes its regime's α and β.
    """

    name: str
    alpha_s: float
    beta_bytes_per_s: float
    source: str
    regimes: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Interconnect name must be a non-empty str, got {self.name!r}")
        _check_number("alpha_s", self.alpha_s, minimum=0.0)
        _check_number("beta_bytes_per_s", self.beta_bytes_per_s, minimum=0.0, strict=True)
        if not isinstance(self.source, str):
            raise TypeError(f"Interconnect source must be a str, got {type(self.source).__name__}")
        bounds = []
        for regime in self.regimes:
            if not (isinstance(regime, tuple) and len(regime) == 3):
                raise TypeError(f"each regime must be an (up_to_bytes, alpha_s, beta_bytes_per_s) tuple, got {regime!r}")
            _check_number("regime up_to_bytes", regime[0], minimum=0.0, strict=True)
            _check_number("regime alpha_s", regime[1], minimum=0.0)
            _check_number("regime beta_bytes_per_s", regime[2], minimum=0.0, strict=True)
            bounds.append(regime[0])
        if bounds != sorted(bounds) or (bounds and bounds[-1] != math.inf):
            raise ValueError("regimes must be in increasing size order, the last one up to infinity")

    def alpha_beta(self, nbytes: float) -> tuple[float, float]:
        """α and β for a message of nbytes: its regime's, or the link's single pair."""
        for up_to, alpha, beta in self.regimes:
            if nbytes <= up_to:
                return alpha, beta
        return self.alpha_s, self.beta_bytes_per_s

    def message_seconds(self, nbytes: float) -> float:
        alpha, beta = self.alpha_beta(nbytes)
        return alpha + nbytes / beta


_LATENCY_NOTE = "α is an assumption (typical small-message latency of the class), not a measurement"


def _nvlink(name: str, gpu: str, total_gbs: int, links: int, per_link_gbs: int, whitepaper: str) -> Interconnect:
    return Interconnect(
        name, 1e-6, total_gbs / 2 * 1e9,
        f"{gpu}: {links} NVLinks × {per_link_gbs} GB/s = {total_gbs} GB/s per GPU, total of both "
        f"directions ({whitepaper}); modelled as {total_gbs // 2} GB/s per direction. {_LATENCY_NOTE} (~1 µs).")


INTERCONNECTS: dict[str, Interconnect] = {ic.name: ic for ic in (
    Interconnect(
        "pcie3", 5e-6, 15.75e9,
        "PCIe 3.0 x16: 8 GT/s × 16 lanes × 128b/130b = 15.75 GB/s per direction (PCI-SIG PCIe 3.0 "
        f"base specification; the cookbook's ≈16 GB/s). {_LATENCY_NOTE} (~5 µs through the host).",
    ),
    Interconnect(
        "ib56", 1.5e-6, 56e9 / 8,
        "InfiniBand FDR 4x: 56 Gb/s signalling (InfiniBand Trade Association roadmap; the cookbook's "
        "56 Gb/s) = 7 GB/s per direction; 64b/66b coding leaves 6.8 GB/s of data, not modelled. "
        f"{_LATENCY_NOTE} (~1-2 µs MPI latency).",
    ),
    *(Interconnect(
        f"{gbit}g", 5e-6, gbit * 1e9 / 8,
        f"{gbit} Gb/s Ethernet (IEEE 802.3) = {gbit / 8:g} GB/s per direction. "
        f"{_LATENCY_NOTE} (~5-10 µs with RoCE/TCP stacks).",
    ) for gbit in (100, 200, 400)),
    *(Interconnect(
        f"ib{gbit}", 1e-6, gbit * 1e9 / 8,
        f"InfiniBand {generation} 4x: {gbit} Gb/s (InfiniBand Trade Association roadmap) = "
        f"{gbit / 8:g} GB/s per direction. {_LATENCY_NOTE} (~1 µs).",
    ) for gbit, generation in ((100, "EDR"), (200, "HDR"), (400, "NDR"))),
    _nvlink("nvlink1", "P100", 160, 4, 40, "NVIDIA Tesla P100 whitepaper, 2016"),
    _nvlink("nvlink2", "V100", 300, 6, 50, "NVIDIA Tesla V100 whitepaper, 2017"),
    _nvlink("nvlink3", "A100", 600, 12, 50, "NVIDIA A100 Tensor Core GPU architecture whitepaper, 2020"),
    _nvlink("nvlink4", "H100", 900, 18, 50, "NVIDIA H100 Tensor Core GPU architecture whitepaper, 2022"),
)}

_ALLREDUCE_NAMES = ("allreduce", "all_reduce", "all-reduce")


def interconnect_from_table(table_doc: dict, backend: str | None = None, ranks: int | None = None) -> Interconnect:
    """The measured all-reduce α/β of a throughput table's "communication" section.

    Reads fit entries {"collective": "allreduce", "backend": ..., "ranks": ..., "alpha_s": ...,
    "beta_bytes_per_s": ..., "regimes": [...]} (as `dlcb bench comm` writes them), given either
    as a list or as list values inside the section's dict. α and β are the per-step latency and
    per-direction bandwidth of the ring model above, regimes (if any) the same per size range.
    With fits at several rank counts the largest is taken unless `ranks` picks one, and of
    several runs the last. Raises ValueError when the table has none (or several backends and
    `backend` does not pick one).
    """
    if not isinstance(table_doc, dict):
        raise TypeError(f"table_doc must be a dict, got {type(table_doc).__name__}")
    if backend is not None and not isinstance(backend, str):
        raise TypeError(f"backend must be a str or None, got {type(backend).__name__}")
    if ranks is not None:
        _check_int("ranks", ranks)
    section = table_doc.get("communication") or {}
    if isinstance(section, dict):
        entries = [e for value in section.values() if isinstance(value, list) for e in value]
    elif isinstance(section, list):
        entries = section
    else:
        raise ValueError(f"the table's 'communication' section must be a list or a dict, "
                         f"got {type(section).__name__}")
    fits = [e for e in entries if isinstance(e, dict)
            and str(e.get("collective", "")).lower() in _ALLREDUCE_NAMES
            and isinstance(e.get("alpha_s"), Real) and isinstance(e.get("beta_bytes_per_s"), Real)
            and (backend is None or e.get("backend") == backend)]
    if not fits:
        which = f" for backend {backend!r}" if backend else ""
        raise ValueError(f"the table has no measured all-reduce α/β{which} in its 'communication' "
                         f"section (`mpirun -n P dlcb bench comm` measures them); use a preset "
                         f"interconnect: {', '.join(INTERCONNECTS)}")
    backends = sorted({str(e.get("backend")) for e in fits})
    if len(backends) > 1:
        raise ValueError(f"the table has all-reduce fits of backends {', '.join(backends)}; name one "
                         f"(backend=, or --interconnect measured:BACKEND)")
    counts = sorted({e.get("ranks") for e in fits if isinstance(e.get("ranks"), int)})
    if ranks is not None:
        fits = [e for e in fits if e.get("ranks") == ranks]
        if not fits:
            raise ValueError(f"the table has no all-reduce fit at {ranks} ranks; it has "
                             f"{', '.join(map(str, counts)) or 'none with a rank count'}")
    elif counts:
        fits = [e for e in fits if e.get("ranks") == counts[-1]]
    fit = fits[-1]
    label = fit.get("backend") or "unknown backend"
    at = f", {fit['ranks']} ranks" if isinstance(fit.get("ranks"), int) else ""
    return Interconnect(f"measured ({label}{at})", float(fit["alpha_s"]), float(fit["beta_bytes_per_s"]),
                        f"all-reduce α/β fitted to measurements in the table's communication section "
                        f"(backend {label}{at}{', by size regime' if _regimes(fit) else ''})",
                        _regimes(fit))


def _regimes(fit: dict) -> tuple:
    """The fit's size regimes as Interconnect regimes: each reaches up to the geometric mean of
    its largest measured size and the next regime's smallest."""
    regimes = fit.get("regimes") or []
    if len(regimes) < 2 or not all(isinstance(r, dict) and isinstance(r.get("beta_bytes_per_s"), Real)
                                   and isinstance(r.get("alpha_s"), Real) for r in regimes):
        return ()
    from ..comm.fit import regime_boundaries

    bounds = regime_boundaries([(r["min_bytes"], r["max_bytes"]) for r in regimes]) + [math.inf]
    return tuple((float(up_to), float(r["alpha_s"]), float(r["beta_bytes_per_s"]))
                 for up_to, r in zip(bounds, regimes))


def get_interconnect(name: str, table_doc: dict | None = None) -> Interconnect:
    """A preset by name, or "measured" / "measured:BACKEND": the table's fitted all-reduce α/β."""
    if not isinstance(name, str):
        raise TypeError(f"interconnect must be a str, got {type(name).__name__}")
    kind, _, backend = name.lower().partition(":")
    if kind == "measured":
        if table_doc is None:
            raise ValueError("interconnect 'measured' needs a table")
        return interconnect_from_table(table_doc, backend=backend or None)
    try:
        return INTERCONNECTS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown interconnect {name!r}; presets: {', '.join(INTERCONNECTS)}, "
                         f"or 'measured[:BACKEND]'") from None


def allreduce_seconds(nbytes: float, p: int, ic: Interconnect, algorithm: str = "ring",
                      shards: int = 1) -> float:
    """Time to all-reduce `nbytes` over `p` workers (formulas in the module docstring).

    `shards` is the number of parameter-server links (algorithm "ps" only).
    """
    _check_number("nbytes", nbytes, minimum=0.0)
    _check_int("p", p)
    _check_int("shards", shards)
    if not isinstance(ic, Interconnect):
        raise TypeError(f"ic must be an Interconnect, got {type(ic).__name__}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    if p == 1:
        return 0.0
    alpha, beta = ic.alpha_beta(nbytes)
    if algorithm == "ring":
        return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / beta
    if algorithm == "tree":
        return 2 * math.ceil(math.log2(p)) * (alpha + nbytes / beta)
    # Each server link carries n/s bytes from each of the p workers; a worker's own link carries n.
    return 2 * (alpha + max(p / shards, 1.0) * nbytes / beta)


def training_rate_needed(macs_per_sample: float, samples: int, seconds: float, passes: int = 3,
                         ops_per_mac: int = 1) -> float:
    """Sustained operations per second to train on `samples` in `seconds`: passes × MACs × samples
    / seconds. The cookbook counts a MAC as one operation and a training step as 3 forward passes
    (forward, backward data, backward weights); ops_per_mac=2 counts real FLOPs."""
    _check_number("macs_per_sample", macs_per_sample, minimum=0.0, strict=True)
    _check_int("samples", samples)
    _check_number("seconds", seconds, minimum=0.0, strict=True)
    _check_int("passes", passes)
    _check_int("ops_per_mac", ops_per_mac)
    return passes * macs_per_sample * ops_per_mac * samples / seconds


# Data parallelism ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepProfile:
    """One worker's training step at one batch, as the overlap model needs it.

    step_seconds: forward + backward + optimizer update on one worker.
    backward: per layer in forward order, (backward seconds, gradient bytes); the forward is
        whatever step_seconds leaves after the backward and the optimizer.
    optimizer_seconds: the update, which needs the all-reduced gradients.
    """

    step_seconds: float
    backward: tuple[tuple[float, float], ...]
    optimizer_seconds: float = 0.0

    def __post_init__(self):
        _check_number("step_seconds", self.step_seconds, minimum=0.0)
        _check_number("optimizer_seconds", self.optimizer_seconds, minimum=0.0)
        if not isinstance(self.backward, tuple):
            raise TypeError(f"backward must be a tuple of (seconds, bytes), got {type(self.backward).__name__}")
        for i, entry in enumerate(self.backward):
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise TypeError(f"backward[{i}] must be a (seconds, bytes) tuple, got {entry!r}")
            _check_number(f"backward[{i}] seconds", entry[0], minimum=0.0)
            _check_number(f"backward[{i}] bytes", entry[1], minimum=0.0)
        if self.backward_seconds + self.optimizer_seconds > self.step_seconds * (1 + 1e-9):
            raise ValueError(f"backward ({self.backward_seconds:.3g} s) plus optimizer "
                             f"({self.optimizer_seconds:.3g} s) exceed step_seconds ({self.step_seconds:.3g} s)")

    @property
    def backward_seconds(self) -> float:
        return sum(seconds for seconds, _ in self.backward)

    @property
    def gradient_bytes(self) -> float:
        return sum(nbytes for _, nbytes in self.backward)

    def scaled(self, factor: float) -> StepProfile:
        """Every time × factor (another device: factor = this device's peak / the other's)."""
        _check_number("factor", factor, minimum=0.0, strict=True)
        return StepProfile(self.step_seconds * factor,
                           tuple((seconds * factor, nbytes) for seconds, nbytes in self.backward),
                           self.optimizer_seconds * factor)


def profile_from_prediction(prediction, memory_backward_share: float = 0.5) -> StepProfile:
    """A StepProfile from a dlcb_kernels.predict ModelPrediction of a training step.

    A layer entry's times and weight bytes are summed over its `count` occurrences; the entry
    becomes `count` successive layers of equal shares. Its memory-bound time covers both passes
    and is split `memory_backward_share` to the backward (an assumption: the prediction does not
    separate them).
    """
    _check_number("memory_backward_share", memory_backward_share, minimum=0.0)
    if memory_backward_share > 1:
        raise ValueError(f"memory_backward_share must be <= 1, got {memory_backward_share}")
    if getattr(prediction, "mode", "train") != "train":
        raise ValueError(f"data parallelism needs a training-step prediction, got mode {prediction.mode!r}")
    backward = []
    for layer in prediction.layers:
        seconds = layer.bwd_data_s + layer.bwd_weights_s + memory_backward_share * layer.memory_s
        backward.extend([(seconds / layer.count, layer.weight_bytes / layer.count)] * layer.count)
    return StepProfile(prediction.step_seconds, tuple(backward), prediction.optimizer_seconds)


def as_profile(prediction) -> StepProfile:
    """A StepProfile as it is, or one made from a ModelPrediction."""
    return prediction if isinstance(prediction, StepProfile) else profile_from_prediction(prediction)


def flops_profile(model, batch: int, gamma_flops: float, efficiency: float = 1.0,
                  itemsize: int = 4) -> StepProfile:
    """The simple compute model: each kernel layer's forward takes 2·MACs·b/(γ·efficiency), its
    backward twice that (data and weight gradients); memory-bound layers and the update are free.

    Gradient bytes are the layer's trainable weights × itemsize.
    """
    _check_int("batch", batch)
    _check_number("gamma_flops", gamma_flops, minimum=0.0, strict=True)
    _check_number("efficiency", efficiency, minimum=0.0, strict=True)
    if efficiency > 1:
        raise ValueError(f"efficiency must be <= 1 (a fraction of gamma_flops), got {efficiency}")
    _check_int("itemsize", itemsize)
    rate = gamma_flops * efficiency
    backward = []
    forward_s = 0.0
    for layer in model.layers:
        fwd = 2 * layer.macs_per_sample() * batch / rate
        forward_s += fwd * layer.count
        backward.extend([(2 * fwd, layer.weight_elements * itemsize)] * layer.count)
    return StepProfile(forward_s + sum(s for s, _ in backward), tuple(backward))


@dataclass(frozen=True)
class ScalingRow:
    workers: int
    batch: int                 # per worker
    global_batch: int
    compute_s: float           # one worker's step without communication
    allreduce_s: float         # all gradient all-reduces back to back, overlapped or not
    step_s: float
    throughput: float          # samples/s over all workers
    speedup: float             # strong: t1/tp; weak: throughput over one worker's
    efficiency: float          # strong: t1/(p·tp); weak: t1/tp

    @property
    def exposed_comm_s(self) -> float:
        return self.step_s - self.compute_s


def step_seconds(profile: StepProfile, p: int, ic: Interconnect, algorithm: str = "ring",
                 overlap: bool = True, bucket_bytes: float = 0.0) -> tuple[float, float]:
    """(step seconds, total all-reduce seconds) of one synchronous data-parallel step.

    With overlap, buckets are consecutive layers (from the last one) holding at least
    `bucket_bytes` of gradients (0: one bucket per layer with weights); a bucket's all-reduce
    starts when its last layer's backward is done and the previous bucket's all-reduce is over.
    """
    if not isinstance(profile, StepProfile):
        raise TypeError(f"profile must be a StepProfile, got {type(profile).__name__}")
    _check_number("bucket_bytes", bucket_bytes, minimum=0.0)
    _check_int("p", p)
    if p == 1:
        return profile.step_seconds, 0.0
    if not overlap:
        comm = allreduce_seconds(profile.gradient_bytes, p, ic, algorithm)
        return profile.step_seconds + comm, comm
    backward_start = profile.step_seconds - profile.optimizer_seconds - profile.backward_seconds
    clock = backward_start
    link_free = backward_start
    pending = 0.0
    comm_total = 0.0
    for seconds, nbytes in reversed(profile.backward):
        clock += seconds
        pending += nbytes
        if pending > 0 and pending >= bucket_bytes:
            cost = allreduce_seconds(pending, p, ic, algorithm)
            link_free = max(link_free, clock) + cost
            comm_total += cost
            pending = 0.0
    if pending > 0:   # the first layers' gradients, short of a full bucket
        cost = allreduce_seconds(pending, p, ic, algorithm)
        link_free = max(link_free, clock) + cost
        comm_total += cost
    return max(profile.step_seconds, link_free + profile.optimizer_seconds), comm_total


def data_parallel(prediction_fn, p_list, batch_list, ic: Interconnect, scaling: str = "weak",
                  overlap: bool = True, algorithm: str = "ring", bucket_bytes: float = 0.0) -> list[ScalingRow]:
    """Rows of synchronous data-parallel training for every batch and worker count.

    prediction_fn(batch) -> StepProfile, or a ModelPrediction (converted by profile_from_prediction),
    for one worker at that per-worker batch. batch_list holds per-worker batches for weak scaling
    and global batches (split ⌈N/p⌉ per worker: the largest share sets the pace) for strong scaling.
    Speedup and efficiency are against one worker at the same batch, computed even when 1 is not
    in p_list.
    """
    if not callable(prediction_fn):
        raise TypeError("prediction_fn must be callable: batch -> StepProfile or ModelPrediction")
    p_list = _int_list("p_list", p_list)
    batch_list = _int_list("batch_list", batch_list)
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}; got {scaling!r}")
    if not isinstance(ic, Interconnect):
        raise TypeError(f"ic must be an Interconnect, got {type(ic).__name__}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    profiles: dict[int, StepProfile] = {}

    def profile(batch: int) -> StepProfile:
        if batch not in profiles:
            profiles[batch] = as_profile(prediction_fn(batch))
        return profiles[batch]

    rows = []
    for batch in batch_list:
        t1 = profile(batch).step_seconds
        for p in p_list:
            if scaling == "strong":
                if batch < p:
                    raise ValueError(f"strong scaling splits global batch {batch} over {p} workers: "
                                     f"each needs at least one sample")
                per_worker, global_batch = math.ceil(batch / p), batch
            else:
                per_worker, global_batch = batch, batch * p
            prof = profile(per_worker)
            step, comm = step_seconds(prof, p, ic, algorithm, overlap, bucket_bytes)
            if scaling == "strong":
                speedup, efficiency = t1 / step, t1 / (p * step)
            else:
                speedup, efficiency = p * t1 / step, t1 / step
            rows.append(ScalingRow(p, per_worker, global_batch, prof.step_seconds, comm, step,
                                   global_batch / step, speedup, efficiency))
    return rows


# Model parallelism -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SummaRow:
    workers: int
    grid: tuple[int, int]      # (r, c)
    panel: int                 # k_b
    compute_s: float           # 2n²b/(pγ)
    comm_s: float
    step_s: float              # compute + communication (not overlapped)
    speedup: float             # one device's 2n²b/γ over step_s

    @property
    def pays(self) -> bool:
        return self.speedup > 1


def summa_comm_seconds(n: int, b: int, grid: tuple[int, int], ic: Interconnect, itemsize: int = 4,
                       panel: int | None = None) -> float:
    """SUMMA's communication for Y (b×n) = X (b×n)·W (n×n) on an r×c grid, binomial broadcasts.

    panel (k_b) defaults to n / max(r, c), the widest panel every process holds whole.
    """
    r, c = _grid(grid)
    _check_int("n", n)
    _check_int("b", b)
    _check_int("itemsize", itemsize)
    panel = _panel(n, r, c, panel)
    steps = math.ceil(n / panel)
    activations = math.ceil(math.log2(c)) * ic.message_seconds(b * panel / r * itemsize)
    weights = math.ceil(math.log2(r)) * ic.message_seconds(n * panel / c * itemsize)
    return steps * (activations + weights)


def summa_fc(n: int, b: int, p: int, grid: tuple[int, int], gamma: float, ic: Interconnect,
             itemsize: int = 4, panel: int | None = None) -> SummaRow:
    """One fully connected layer (n inputs, n outputs, batch b) on p = r·c devices of γ FLOP/s."""
    _check_int("p", p)
    r, c = _grid(grid)
    if r * c != p:
        raise ValueError(f"grid {r}x{c} has {r * c} processes, not p = {p}")
    _check_number("gamma", gamma, minimum=0.0, strict=True)
    single = 2 * n * n * b / gamma
    compute = single / p
    comm = summa_comm_seconds(n, b, (r, c), ic, itemsize, panel) if p > 1 else 0.0
    return SummaRow(p, (r, c), _panel(n, r, c, panel), compute, comm, compute + comm, single / (compute + comm))


def summa_grids(p: int) -> list[tuple[int, int]]:
    """Every r×c factorization of p."""
    _check_int("p", p)
    return [(r, p // r) for r in range(1, p + 1) if p % r == 0]


def summa_table(n: int, b: int, p_list, gamma: float, ic: Interconnect, itemsize: int = 4) -> list[SummaRow]:
    """summa_fc for every p and every grid of it."""
    return [summa_fc(n, b, p, grid, gamma, ic, itemsize)
            for p in _int_list("p_list", p_list) for grid in summa_grids(p)]


def summa_min_beta(n: int, b: int, grid: tuple[int, int], gamma: float, alpha_s: float = 0.0,
                   itemsize: int = 4, panel: int | None = None) -> float:
    """The bandwidth (bytes/s) above which SUMMA on `grid` beats one device: math.inf when the
    latency alone eats the saved compute."""
    r, c = _grid(grid)
    _check_number("alpha_s", alpha_s, minimum=0.0)
    # comm = latency + volume/β, linear in 1/β: read both parts off two evaluations.
    latency = summa_comm_seconds(n, b, (r, c), Interconnect("latency", alpha_s, math.inf, ""), itemsize, panel)
    volume = summa_comm_seconds(n, b, (r, c), Interconnect("volume", 0.0, 1.0, ""), itemsize, panel)
    single = 2 * n * n * b / gamma
    saved = single - single / (r * c) - latency
    if volume == 0:
        return 0.0 if saved > 0 else math.inf
    return volume / saved if saved > 0 else math.inf
