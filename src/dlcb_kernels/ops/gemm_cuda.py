"""GEMM on NVIDIA GPUs with our CUDA kernels: the GPU path of dlcb_kernels.gemm.

Arrays may be CuPy arrays, torch CUDA tensors or any DLPack / CUDA Array Interface producer,
float32, float16 or bfloat16 (see device_array). Each matrix needs a unit stride along one
axis; a transposed view (unit stride along its first axis) is read in place by flipping the
transpose flag. The kernel is queued on `stream` and the call returns without waiting.
"""

from __future__ import annotations

from .. import cuda
from .._validate import require_bool, require_choice, require_real
from ..device_array import DeviceArray
from ._cuda_common import (
    DTYPE_CODES,
    NativeCall,
    compute_capability,
    device_arrays,
    native_module,
    output,
    pick_variant,
    stream_handle,
)

# Best first: "auto" takes the first that can run the arguments on this device.
VARIANTS = {
    "float32": ("sgemm-warp-tiled-double-buffered", "sgemm-vectorized", "sgemm-register-blocked",
                "sgemm-smem-tiled", "sgemm-naive"),
    "float16": ("tc-wgmma-tma", "tc-mma-sync-multistage"),
    "bfloat16": ("tc-wgmma-tma", "tc-mma-sync-multistage"),
}
ALL_VARIANTS = tuple(dict.fromkeys(v for names in VARIANTS.values() for v in names))
_INT_LIMIT = 2**31 - 1


def _operand(view: DeviceArray, name: str, trans: bool) -> tuple[int, bool]:
    """(leading dimension, transpose flag) of a 2-D operand stored row-major or as a
    transposed view."""
    if view.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {view.shape}")
    rows, cols = view.shape
    row_stride, col_stride = view.strides
    if cols == 1:
        col_stride = 1
    if rows == 1:
        row_stride = max(cols, 1)
    if col_stride == 1 and row_stride >= cols:
        return row_stride, trans
    if row_stride == 1 and col_stride >= rows:  # a transposed view: its storage is cols x rows
        return col_stride, not trans
    raise ValueError(f"{name} must have a unit stride along one axis and no overlapping rows "
                     f"(strides {view.strides} elements); make a contiguous copy first")


def gemm_cuda(a, b, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0, beta: float = 0.0,
              c=None, variant: str = "auto", stream=None):
    """C = alpha * op(a) @ op(b) + beta * c on the GPU; returns (C, variant used). See plan_gemm."""
    c, call = plan_gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c, variant=variant,
                        stream=stream)
    call()
    return c, call.variant


def plan_gemm(a, b, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0, beta: float = 0.0,
              c=None, variant: str = "auto", stream=None):
    """Checks the arguments and picks the variant; returns (C, NativeCall) without running it.

    a, b (and c) share one dtype and one device. c, when given, must be C-contiguous, of shape
    (M, N), and share no memory with a or b; with beta == 0 it is only written. Without c the
    result is allocated by the inputs' library. m, n and k must all be >= 1.
    """
    require_choice(variant, "variant", ("auto",) + ALL_VARIANTS)
    trans_a = require_bool(trans_a, "trans_a")
    trans_b = require_bool(trans_b, "trans_b")
    alpha = require_real(alpha, "alpha")
    beta = require_real(beta, "beta")
    stream = stream_handle(stream)
    views = device_arrays({"a": a, "b": b})
    va, vb = views["a"], views["b"]
    for view, name in ((va, "a"), (vb, "b")):
        if view.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {view.shape}")
    m, k = (va.shape[1], va.shape[0]) if trans_a else va.shape
    k_b, n = (vb.shape[1], vb.shape[0]) if trans_b else vb.shape
    if k != k_b:
        raise ValueError(f"inner dimensions differ: op(a) is {m}x{k} (a.shape={va.shape}, trans_a={trans_a}) but "
                         f"op(b) is {k_b}x{n} (b.shape={vb.shape}, trans_b={trans_b})")
    if min(m, n, k) < 1:
        raise ValueError(f"the GPU GEMM needs m, n, k >= 1, got {m}, {n}, {k}")
    if max(m, n, k) > _INT_LIMIT:
        raise ValueError(f"m, n and k must be below 2**31, got {m}, {n}, {k}")
    if c is None and beta != 0.0:
        raise ValueError(f"beta={beta} needs c (the matrix to accumulate into)")
    lda, native_trans_a = _operand(va, "a", trans_a)
    ldb, native_trans_b = _operand(vb, "b", trans_b)
    ext = native_module(va.device)
    c, vc = output(c, "c", va, (m, n), va.dtype, views)
    args = {"m": m, "n": n, "k": k, "dtype": DTYPE_CODES[va.dtype],
            "a": va.ptr, "lda": lda, "trans_a": native_trans_a,
            "b": vb.ptr, "ldb": ldb, "trans_b": native_trans_b,
            "c": vc.ptr, "ldc": vc.strides[0] if m > 1 else n, "alpha": alpha, "beta": beta}
    cc = compute_capability(va.device)
    chosen = pick_variant(variant, list(VARIANTS[va.dtype]),
                          lambda name: ext.gemm_unsupported_reason(name, args, cc), "gemm")
    return c, NativeCall(ext.gemm, chosen, args, va.device, stream)


def variant_info() -> list[dict]:
    """The native GEMM variants: name, dtype, technique, min_cc, exact_cc."""
    return list(cuda.module().gemm_variants())
