"""cuBLAS through CuPy: cublasGemmEx on the shared device buffers, with the compute type named
in the record.

  cublas        float32 problems with CUBLAS_COMPUTE_32F (true fp32 FMAs); float16/bfloat16
                problems with fp32 accumulation (CUBLAS_COMPUTE_32F), what our kernels do too
  cublas-tf32   float32 problems with CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores, inputs
                rounded to TF32): a different precision, so not a default baseline; its check
                allows TF32's rounding

Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets B first.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from ..device_array import BFloat16Array
from . import Implementation, PreparedRun, register
from .gpu_inputs import device_inputs, gpu_unavailable_reason

# cudaDataType_t and cublasComputeType_t values (library_types.h, cublas_api.h).
_CUDA_TYPES = {"float32": 0, "float16": 2, "bfloat16": 14}
COMPUTE_32F, COMPUTE_32F_FAST_TF32 = 68, 77
_GEMM_DEFAULT_ALGO = -1
_OP_N, _OP_T = 0, 1


def _library() -> str:
    import cupy

    version = cupy.cuda.runtime.runtimeGetVersion()
    try:
        cublas = cupy.cuda.cublas.getVersion(cupy.cuda.device.get_cublas_handle())
    except Exception:  # noqa: BLE001 - the version is provenance, not a requirement
        cublas = "unknown"
    return f"cuBLAS {cublas} via CuPy {cupy.__version__} (CUDA runtime {version})"


def _unavailable(problem=None) -> str | None:
    reason = gpu_unavailable_reason(problem)
    if reason:
        return reason
    try:
        from cupy.cuda import cublas  # noqa: F401 - CuPy 14 loads libcublas here, on first use
    except ImportError as exc:
        return f"unavailable: CuPy cannot load cuBLAS: {exc}"
    return None


def _pointer(array) -> int:
    return int((array.bits if isinstance(array, BFloat16Array) else array).data.ptr)


def _gemm(variant: str, compute_type: int, dtypes: tuple[str, ...], default: bool, tolerance=None) -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int, *, device: int = 0, stream: int = 0) -> Iterator[PreparedRun]:
        import cupy
        from cupy.cuda import cublas

        dev = device_inputs(problem, inputs, device)
        with cupy.cuda.Device(device):
            if problem.dtype == "bfloat16":
                c = BFloat16Array(cupy.empty((problem.m, problem.n), dtype=cupy.uint16))
            else:
                c = cupy.empty((problem.m, problem.n), dtype=problem.dtype)
            handle = cupy.cuda.device.get_cublas_handle()
        scalars = np.array([1.0, 0.0], dtype=np.float32)  # alpha, beta: host memory, fp32 compute
        data_type = _CUDA_TYPES[problem.dtype]
        a_ptr, b_ptr, c_ptr = _pointer(dev["a"]), _pointer(dev["b"]), _pointer(c)
        lda = problem.m if problem.trans_a else problem.k
        ldb = problem.k if problem.trans_b else problem.n
        external = cupy.cuda.ExternalStream(stream, device) if stream else cupy.cuda.Stream.null

        def run() -> None:
            with external:
                cublas.gemmEx(handle, _OP_T if problem.trans_b else _OP_N, _OP_T if problem.trans_a else _OP_N,
                              problem.n, problem.m, problem.k, scalars.ctypes.data,
                              b_ptr, data_type, ldb, a_ptr, data_type, lda,
                              scalars.ctypes.data + 4, c_ptr, data_type, problem.n, compute_type,
                              _GEMM_DEFAULT_ALGO)

        compute = {COMPUTE_32F: "CUBLAS_COMPUTE_32F", COMPUTE_32F_FAST_TF32: "CUBLAS_COMPUTE_32F_FAST_TF32"}
        yield PreparedRun(run, c, 1, f"cublasGemmEx, {compute[compute_type]}, CUBLAS_GEMM_DEFAULT, "
                                     f"{problem.dtype} in and out")

    return Implementation("gemm", "cuda", variant, "vendor", _library, _unavailable, prepare,
                          default=default,
                          dtypes=dtypes, tolerance=tolerance)


def tf32_tolerance(problem) -> float:
    """TF32 keeps 10 mantissa bits of each input: every product is off by up to 2^-10
    relative, and the errors add like a random walk over k terms relative to C's scale."""
    return problem.tolerance() + 5.0 * 2.0**-10


register(_gemm("cublas", COMPUTE_32F, ("float32", "float16", "bfloat16"), True))
register(_gemm("cublas-tf32", COMPUTE_32F_FAST_TF32, ("float32",), False, tf32_tolerance))
