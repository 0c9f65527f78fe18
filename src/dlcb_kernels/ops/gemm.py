"""C = alpha * op(A) @ op(B) + beta * C with our own kernels: float32 numpy arrays on the CPU,
or float32/float16/bfloat16 GPU arrays (CuPy, torch, DLPack) on NVIDIA GPUs (gemm_cuda)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import numpy as np

from .. import _cpu
from .._validate import (
    element_strided,
    require_array,
    require_bool,
    require_choice,
    require_dtype,
    require_int,
    require_memory,
    require_ndim,
    require_real,
    require_threads,
)
from ..device_array import is_device_array

BACKENDS = ("auto", "cpu", "cuda")
ISAS = ("auto", "avx512", "avx2", "portable")
# Forces what isa="auto" means for every CPU kernel of the process (GEMM, convolution, RNN and
# the peak probes), to test and measure the AVX2 and portable paths on a machine with AVX-512.
ISA_ENV = "DLCB_ISA"


def available_isas() -> list[str]:
    """The micro-kernel instruction sets this CPU runs, best first."""
    return [isa for isa in ISAS[1:] if _cpu.gemm_isa(isa) is not None]


def resolve_isa(isa: str = "auto") -> str:
    """The micro-kernel instruction set a CPU kernel called with `isa` runs: `isa` itself, or for
    "auto" the one the environment variable DLCB_ISA names, else the best this CPU runs.
    ValueError, naming the argument or the variable, when it is unknown or this CPU cannot run it."""
    require_choice(isa, "isa", ISAS)
    source = "isa"
    if isa == "auto":
        forced = os.environ.get(ISA_ENV, "").strip()
        if forced and forced != "auto":
            if forced not in ISAS:
                raise ValueError(f"{ISA_ENV}={forced!r} is not one of {', '.join(ISAS)}")
            isa, source = forced, ISA_ENV
    resolved = _kernel_set_name(isa)
    if resolved is None:
        raise ValueError(f"{source} {isa!r} is not supported by this CPU; available: {available_isas()}")
    return resolved


@functools.cache
def _kernel_set_name(isa: str) -> str | None:
    """The kernel set an explicit isa selects, None when this CPU lacks it (fixed per process:
    cached, since every kernel call asks)."""
    info = _cpu.gemm_isa(isa)
    return None if info is None else info["isa"]


def kernel_info(isa: str = "auto") -> dict:
    """Register and cache blocking of the kernel set `isa` selects on this CPU ("auto": see
    resolve_isa): {"isa", "mr", "nr", "kc", "mc", "nc" (the blocked schedule's cache blocks),
    "narrow_bytes" (the narrow schedules' L2 budget), "blocking_rule" (how they were chosen)}."""
    return dict(_cpu.gemm_isa(resolve_isa(isa)))


def gemm_plan(m: int, n: int, k: int, isa: str = "auto", *, trans_a: bool = False,
              trans_b: bool = False) -> dict:
    """What gemm runs for an m x n x k problem with contiguous operands on this CPU: {"isa",
    "schedule", "transposed", "kc", "mc", "nc", "mr", "nr"}.

    schedule is the Goto/BLIS loop nest ("blocked", "narrow-n" or "narrow-m", with cache blocks
    kc, mc, nc as upper bounds), or "inner-product": small problems whose A rows and B columns
    both run along k (trans_b without trans_a) as dot products without packing. transposed: C^T
    = B^T A^T is computed instead (a few rows against a column-major B), the schedule and blocks
    being those of the n x m problem."""
    dims = [require_int(value, name, 0) for value, name in ((m, "m"), (n, "n"), (k, "k"))]
    for value, name in zip(dims, "mnk"):
        if value >= 2**62:
            raise ValueError(f"{name} must be < 2**62, got {value}")
    trans_a = require_bool(trans_a, "trans_a")
    trans_b = require_bool(trans_b, "trans_b")
    resolved = resolve_isa(isa)
    info = _cpu.gemm_isa(resolved)
    return {**_cpu.gemm_plan(resolved, *dims, trans_a=trans_a, trans_b=trans_b), "mr": info["mr"], "nr": info["nr"]}


def gemm(
    a,
    b,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    c: np.ndarray | None = None,
    backend: str = "auto",
    isa: str = "auto",
    threads: int | None = None,
    variant: str = "auto",
    stream=None,
):
    """General matrix multiply with our own kernels: C = alpha * op(a) @ op(b) + beta * c.

    op(x) is x.T when the matching trans_* flag is set. a and b are 2-D float32 arrays of any
    strides (transposed and sliced views are read in place, no copy). When c is given it must be
    a float32 (M, N) array with contiguous rows that shares no memory with a or b; it is updated
    in place and returned. beta != 0 needs c; with beta == 0, c is only written (like BLAS, NaNs
    in it do not propagate). threads defaults to OpenMP's (OMP_NUM_THREADS); isa picks the
    micro-kernel ("auto": DLCB_ISA when set, else the best this CPU runs). Returns C.

    GPU arrays (backend "auto" or "cuda") run our CUDA kernels instead: float32, float16 or
    bfloat16, `variant` names one (see gemm_cuda.VARIANTS; "auto": the best that can run the
    arguments), `stream` is the CUDA stream to queue it on (default: the legacy default
    stream), and the call returns before the kernel finishes. isa and threads are CPU-only.
    """
    if backend == "cuda" or (backend == "auto" and (is_device_array(a) or is_device_array(b))):
        from .gemm_cuda import gemm_cuda

        return gemm_cuda(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c,
                         variant=variant, stream=stream)[0]
    if variant != "auto" or stream is not None:
        raise ValueError("variant and stream apply to GPU arrays only; a and b are on the host")
    c_out, _ = gemm_with_threads(
        a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c, backend=backend,
        isa=isa, threads=threads,
    )
    return c_out


def gemm_with_threads(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None,
                      backend="auto", isa="auto", threads=None) -> tuple[np.ndarray, int]:
    """gemm on the CPU, also returning the number of threads the kernel ran on (small problems
    use fewer)."""
    c, call = prepare_gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c,
                           backend=backend, isa=isa, threads=threads)
    return c, call()


def prepare_gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None,
                 backend="auto", isa="auto", threads=None) -> tuple[np.ndarray, Callable[[], int]]:
    """Validates gemm's CPU arguments once and returns (C, run): run() computes C in place and
    returns the number of threads used. For timing loops, whose arguments do not change between
    calls: a small GEMM then pays for the checks once, not on every call (the arrays must not be
    resized or freed while run is kept)."""
    require_choice(backend, "backend", BACKENDS)
    if backend == "cuda":
        raise ValueError("gemm_with_threads runs on the CPU; use gemm(..., backend='cuda') for GPU arrays")
    isa = resolve_isa(isa)
    a = require_array(a, "a")
    b = require_array(b, "b")
    require_dtype(a, "a", np.float32)
    require_dtype(b, "b", np.float32)
    require_ndim(a, "a", 2)
    require_ndim(b, "b", 2)
    trans_a = require_bool(trans_a, "trans_a")
    trans_b = require_bool(trans_b, "trans_b")
    alpha = require_real(alpha, "alpha")
    beta = require_real(beta, "beta")
    threads = require_threads(threads)

    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k_b, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k_b:
        raise ValueError(
            f"inner dimensions differ: op(a) is {m}x{k} (a.shape={a.shape}, trans_a={trans_a}) but "
            f"op(b) is {k_b}x{n} (b.shape={b.shape}, trans_b={trans_b})"
        )
    if c is None:
        if beta != 0.0:
            raise ValueError(f"beta={beta} needs c (the matrix to accumulate into)")
        require_memory(4 * m * n, f"C ({m} x {n})")
        c = np.empty((m, n), dtype=np.float32)
        c_native = c
    else:
        c = require_array(c, "c")
        require_dtype(c, "c", np.float32)
        require_ndim(c, "c", 2)
        if c.shape != (m, n):
            raise ValueError(f"c must have shape {(m, n)} (op(a) rows x op(b) columns), got {c.shape}")
        if not c.flags.writeable:
            raise ValueError("c is read-only")
        c_native = _row_major_view(c)
        if c_native is None and c.size:
            raise ValueError(
                f"c must have contiguous, non-overlapping rows (strides {c.strides}); "
                "pass numpy.ascontiguousarray(c) and read the result back from the return value"
            )
        for other, name in ((a, "a"), (b, "b")):
            if _overlaps(c, other):
                raise ValueError(f"c shares memory with {name}: the result would overwrite its own input")
    if c.size == 0:
        return c, lambda: 1
    a, b = element_strided(a), element_strided(b)
    if not c_native.flags.aligned:  # computed in an aligned copy, then written back
        target = c_native

        def run() -> int:
            aligned = np.array(target)
            used = _cpu.sgemm(a, b, aligned, trans_a, trans_b, alpha, beta, isa, threads)
            target[...] = aligned
            return used

        return c, run

    def run() -> int:
        return _cpu.sgemm(a, b, c_native, trans_a, trans_b, alpha, beta, isa, threads)

    return c, run


def _row_major_view(c: np.ndarray) -> np.ndarray | None:
    """A view of c with unit column stride and rows at least a row apart, or None if c's
    elements cannot be addressed that way. A single column or row may carry any stride on its
    length-1 axis, so that stride is replaced rather than rejected."""
    m, n = c.shape
    item = c.itemsize
    col_stride = item if n <= 1 else c.strides[1]
    row_stride = item * n if m <= 1 else c.strides[0]
    if col_stride != item or row_stride < item * n:
        return None
    if (row_stride, col_stride) == c.strides:
        return c
    return np.lib.stride_tricks.as_strided(c, strides=(row_stride, col_stride))


def _overlaps(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether x and y share memory; when the exact answer is too costly, assume they do."""
    if not np.may_share_memory(x, y):  # disjoint address ranges: the cheap, common answer
        return False
    try:
        return bool(np.shares_memory(x, y, max_work=100_000))
    except np.exceptions.TooHardError if hasattr(np, "exceptions") else np.TooHardError:
        return True
