"""The GEMM problem: C = op(A) op(B), DeepBench's shapes and FLOP count."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ._common import (
    DTYPES,
    check_dims,
    from_params,
    itemsize,
    output_rounding,
    relative_error,
    sample,
    storage,
)


@dataclass(frozen=True)
class GemmProblem:
    """C (m x n) = op(A) (m x k) @ op(B) (k x n); trans_* as in BLAS (DeepBench's a_t / b_t).

    FLOPs = 2 m n k (DeepBench's convention: a multiply and an add per term). Minimum bytes =
    reading A and B once and writing C once (beta = 0, so C is not read).
    """

    m: int
    n: int
    k: int
    trans_a: bool = False
    trans_b: bool = False
    dtype: str = "float32"

    op = "gemm"
    error_metric = "max|C - C_ref| / rms(C_ref), float64 reference on sampled rows"

    def __post_init__(self):
        check_dims(self, ("m", "n", "k"), minimum=1)
        if self.dtype not in DTYPES:
            raise ValueError(f"GemmProblem.dtype must be one of {DTYPES}, got {self.dtype!r}")

    @property
    def itemsize(self) -> int:
        return itemsize(self.dtype)

    def flops(self) -> int:
        return 2 * self.m * self.n * self.k

    def bytes_min(self) -> int:
        return self.itemsize * (self.m * self.k + self.k * self.n + self.m * self.n)

    def arithmetic_intensity(self) -> float:
        return self.flops() / self.bytes_min()

    @property
    def layout(self) -> str:
        return ("T" if self.trans_a else "N") + ("T" if self.trans_b else "N")

    def key(self) -> str:
        text = f"gemm {self.m}x{self.n}x{self.k} {self.layout}"
        return text if self.dtype == "float32" else f"{text} {self.dtype}"

    def params(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_params(cls, params: dict) -> "GemmProblem":
        return from_params(cls, params)

    def scaled_to(self, max_flops: float) -> "GemmProblem":
        """The same shape class within a FLOP budget: halve the largest dimension until it fits."""
        dims = {"m": self.m, "n": self.n, "k": self.k}
        while 2 * dims["m"] * dims["n"] * dims["k"] > max_flops and max(dims.values()) > 1:
            largest = max(dims, key=dims.get)
            dims[largest] = max(1, dims[largest] // 2)
        return dataclasses.replace(self, **dims)

    # Inputs and the reference -------------------------------------------------------------

    def make_inputs(self, seed: int = 0) -> dict:
        """A and B in their stored layout (transposed when trans_*), uniform in [-1, 1), rounded
        to the dtype (bfloat16 values held in float32 arrays: see problems._common.storage)."""
        rng = np.random.default_rng(seed)
        a_shape = (self.k, self.m) if self.trans_a else (self.m, self.k)
        b_shape = (self.n, self.k) if self.trans_b else (self.k, self.n)
        a = storage(rng.uniform(-1.0, 1.0, a_shape), self.dtype)
        b = storage(rng.uniform(-1.0, 1.0, b_shape), self.dtype)
        return {"a": a, "b": b}

    def tolerance(self) -> float:
        """Bound on check_error for a correct float32 kernel: accumulated rounding grows like
        sqrt(k) relative to the result's scale; a missing or repeated term is far above it.
        16-bit results add their one final rounding."""
        return 1e-5 + 5e-6 * float(np.sqrt(self.k)) + output_rounding(self.dtype)

    def check_error(self, inputs: dict, c: np.ndarray, max_rows: int = 64, seed: int = 1) -> float:
        """max |C - C_ref| / rms(C_ref) over a sample of rows, C_ref computed in float64.

        Sampling rows keeps the check cheap for any size (cost max_rows x k x n) while every
        column, and every k term, is still checked.
        """
        a = inputs["a"].T if self.trans_a else inputs["a"]
        b = inputs["b"].T if self.trans_b else inputs["b"]
        if c.shape != (self.m, self.n):
            return float("inf")
        rows = sample(self.m, max_rows, seed)
        ref = a[rows].astype(np.float64) @ b.astype(np.float64)
        return relative_error(c[rows], ref)
