"""Collectives as problems: sizes, the nccl-tests bandwidth definitions, and exact-check data.

Sizes follow nccl-tests ("PERFORMANCE.md" in NVIDIA/nccl-tests): a collective of `nbytes` moves
  all-reduce       nbytes in, nbytes out on every rank
  all-gather       nbytes/p in, nbytes out (nbytes is the gathered buffer)
  reduce-scatter   nbytes in, nbytes/p out (nbytes is the full input)
  broadcast        nbytes from rank 0 to every rank
algbw = nbytes / time, and busbw = algbw × factor, the factor making busbw comparable with the
link's bandwidth whatever p is: 2(p-1)/p for all-reduce, (p-1)/p for all-gather and
reduce-scatter, 1 for broadcast.

Inputs are small integers, so every sum is exact in floating point and the result of a correct
collective equals the expected array bit for bit, whatever order the library reduces in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

COLLECTIVES = ("allreduce", "allgather", "reducescatter", "broadcast")
COMM_DTYPES = {"float32": np.float32, "float64": np.float64}
_PATTERN = 61                  # values repeat every 61 elements (prime: a shifted block shows)
_SPLIT = ("allgather", "reducescatter")    # one buffer is p times the other


def bus_factor(collective: str, p: int) -> float:
    if collective == "allreduce":
        return 2.0 * (p - 1) / p
    if collective in ("allgather", "reducescatter"):
        return (p - 1) / p
    if collective == "broadcast":
        return 1.0
    raise ValueError(f"collective must be one of {', '.join(COLLECTIVES)}, got {collective!r}")


def model_steps(collective: str, p: int) -> tuple[int, str]:
    """Message steps in the α-β model that turns a fit a + b·n into a link α and β, and its name.

    Ring all-reduce takes 2(p-1) steps, ring all-gather and reduce-scatter p-1, binomial-tree
    broadcast ⌈log₂p⌉ (the algorithms of the scaling predictor and of the textbook cost models,
    e.g. Thakur, Rabenseifner & Gropp, "Optimization of collective communication operations in
    MPICH", IJHPCA 19(1), 2005)."""
    if collective == "allreduce":
        return 2 * (p - 1), "ring"
    if collective in ("allgather", "reducescatter"):
        return p - 1, "ring"
    if collective == "broadcast":
        return max(1, math.ceil(math.log2(p))) if p > 1 else 1, "binomial tree"
    raise ValueError(f"collective must be one of {', '.join(COLLECTIVES)}, got {collective!r}")


@dataclass(frozen=True)
class CommProblem:
    """One collective over p ranks on `count` elements per rank-chunk (see nbytes)."""

    collective: str
    nbytes: int                 # the nccl-tests size (see the module docstring)
    ranks: int
    dtype: str = "float32"

    def __post_init__(self):
        if self.collective not in COLLECTIVES:
            raise ValueError(f"collective must be one of {', '.join(COLLECTIVES)}, got {self.collective!r}")
        if self.dtype not in COMM_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(COMM_DTYPES)}, got {self.dtype!r}")
        for name in ("nbytes", "ranks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.nbytes % self.unit_bytes:
            raise ValueError(f"nbytes {self.nbytes} of {self.collective} over {self.ranks} ranks must be a "
                             f"multiple of {self.unit_bytes} (use CommProblem.rounded)")

    @property
    def itemsize(self) -> int:
        return np.dtype(COMM_DTYPES[self.dtype]).itemsize

    @property
    def unit_bytes(self) -> int:
        """The smallest size: one element, or one element per rank where the buffer is split."""
        return self.itemsize * (self.ranks if self.collective in _SPLIT else 1)

    @classmethod
    def rounded(cls, collective: str, nbytes: int, ranks: int, dtype: str = "float32") -> CommProblem:
        """The problem of the nearest valid size at or below nbytes (at least one unit)."""
        if dtype not in COMM_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(COMM_DTYPES)}, got {dtype!r}")
        if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
            raise ValueError(f"ranks must be a positive int, got {ranks!r}")
        unit = np.dtype(COMM_DTYPES[dtype]).itemsize * (ranks if collective in _SPLIT else 1)
        return cls(collective, max(unit, nbytes // unit * unit), ranks, dtype)

    @property
    def count(self) -> int:
        """Elements of the full (largest) buffer."""
        return self.nbytes // self.itemsize

    @property
    def chunk(self) -> int:
        """Elements of one rank's share (all-gather input, reduce-scatter output)."""
        return self.count // self.ranks

    def key(self) -> str:
        return f"{self.collective}:{self.nbytes}B:p{self.ranks}:{self.dtype}"

    def algbw(self, seconds: float) -> float:
        return self.nbytes / seconds

    def busbw(self, seconds: float) -> float:
        return self.algbw(seconds) * bus_factor(self.collective, self.ranks)

    # Buffers and exact expectations ---------------------------------------------------------

    def send_shape(self) -> int:
        return self.chunk if self.collective == "allgather" else self.count

    def recv_shape(self) -> int:
        return self.chunk if self.collective == "reducescatter" else self.count

    def send_data(self, rank: int) -> np.ndarray:
        """This rank's input, on the host."""
        dtype = COMM_DTYPES[self.dtype]
        if self.collective == "allgather":
            return _gather_block(rank, self.chunk, dtype)
        if self.collective == "broadcast":
            return _broadcast_data(self.count, dtype) if rank == 0 else np.zeros(self.count, dtype)
        return _reduce_input(rank, self.count, dtype)

    def expected(self, rank: int) -> np.ndarray:
        """What a correct collective leaves in this rank's output."""
        dtype = COMM_DTYPES[self.dtype]
        p = self.ranks
        if self.collective == "allgather":
            return np.concatenate([_gather_block(r, self.chunk, dtype) for r in range(p)])
        if self.collective == "broadcast":
            return _broadcast_data(self.count, dtype)
        total = np.arange(self.count, dtype=np.int64) % _PATTERN * p + p * (p + 1) // 2
        if self.collective == "reducescatter":
            total = total[rank * self.chunk:(rank + 1) * self.chunk]
        return total.astype(dtype)


def _reduce_input(rank: int, count: int, dtype) -> np.ndarray:
    # Σ_r (r + 1 + i mod 61) = p(p+1)/2 + p·(i mod 61): small integers, exact in any order.
    return (np.arange(count, dtype=np.int64) % _PATTERN + (rank + 1)).astype(dtype)


def _gather_block(rank: int, chunk: int, dtype) -> np.ndarray:
    return ((np.arange(chunk, dtype=np.int64) + 7 * rank) % 251).astype(dtype)


def _broadcast_data(count: int, dtype) -> np.ndarray:
    return (np.arange(count, dtype=np.int64) % 251 + 1).astype(dtype)


def size_sweep(min_bytes: int, max_bytes: int, factor: int = 2) -> list[int]:
    """min_bytes, min_bytes·factor, ... up to max_bytes (included when it is on the ladder)."""
    if min_bytes < 1 or max_bytes < min_bytes:
        raise ValueError(f"need 1 <= min_bytes <= max_bytes, got {min_bytes} and {max_bytes}")
    if factor < 2:
        raise ValueError(f"factor must be >= 2, got {factor}")
    sizes, size = [], min_bytes
    while size <= max_bytes:
        sizes.append(size)
        size *= factor
    return sizes


def deepbench_allreduce_sizes() -> list[int]:
    """The all-reduce sizes of DeepBench's all_reduce.csv (its `floats` column), in bytes of float32."""
    import csv
    from importlib import resources

    text = resources.files("dlcb_kernels").joinpath("data", "deepbench", "all_reduce.csv").read_text(encoding="utf-8")
    return [int(row["floats"]) * 4 for row in csv.DictReader(text.splitlines())]


def parse_bytes(text: str) -> int:
    """'8', '1K', '64KiB', '256M', '1G' -> bytes (binary multiples)."""
    units = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
             "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}
    raw = text.strip().lower()
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(digits):]
    if not digits.isdigit() or unit not in units:
        raise ValueError(f"expected a size such as 8, 64K, 256M or 1G, got {text!r}")
    value = int(digits) * units[unit]
    if value < 1:
        raise ValueError(f"size must be at least 1 byte, got {text!r}")
    return value


def format_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"
