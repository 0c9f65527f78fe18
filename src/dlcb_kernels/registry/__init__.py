"""The one registry of implementations: op x backend x variant.

An implementation takes a problem and its inputs and returns a prepared run: a callable that
computes the result into a buffer allocated once (where the library allows), so timing sees the
kernel and nothing else. Vendor baselines live here beside our own kernels and run on the very
same input arrays, on the same number of threads.

  ours.py          our CPU kernels (GEMM per ISA, convolution, RNN cells)
  numpy_vendor.py  numpy/OpenBLAS: matmul, im2col + matmul convolution, per-step matmul RNNs
  torch_vendor.py  PyTorch CPU (MKL GEMM, oneDNN convolution and RNNs); optional
  ort_vendor.py    onnxruntime (MLAS) Gemm, Conv, RNN/LSTM/GRU graphs; optional, inference only
  cuda_ours.py     our CUDA kernels (GEMM ladder and tensor-core variants, convolution, RNNs)
  cupy_vendor.py   cuBLAS through CuPy (cublasGemmEx, compute type recorded)
  torch_cuda_vendor.py  cuDNN through PyTorch (convolution and its backward, RNN layers)
  memory_layers.py  memory-bound layers (MemoryProblem) as the validation runners run them: torch, ours

GPU implementations (backend "cuda") run on device buffers that every implementation of a
problem shares (gpu_inputs.device_inputs), on the bench's stream, timed with CUDA events.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

PROVIDERS = ("ours", "vendor")


@dataclass
class PreparedRun:
    run: Callable[[], None]          # one execution of the kernel, result into `output`
    output: object                   # the result (an array, or a dict of arrays); run() may rebind it
    threads: int                     # threads the kernel runs on (known after the first run)
    algorithm: str | None = None     # what the implementation says it ran, where it says
    # Our CPU kernels: the micro-kernel and cache blocking that ran (isa, mr, nr, kc, mc, nc,
    # and for a GEMM its schedule), recorded with the measurement.
    kernel: dict | None = None


@dataclass(frozen=True)
class Implementation:
    op: str
    backend: str
    variant: str
    provider: str                                   # "ours" or "vendor"
    library: Callable[[], str]                      # library and version, for the record
    unavailable_reason: Callable[..., str | None]   # (problem=None) -> None when it can run it here
    prepare: Callable[..., contextlib.AbstractContextManager[PreparedRun]]
    default: bool = True                            # chosen by "--impl ours" / "vendor"
    dtypes: tuple[str, ...] = field(default=("float32",))
    layouts: tuple[str, ...] = field(default=("NCHW",))  # tensor layouts (problems that have one)
    # The check's tolerance when the implementation computes in a narrower type than the
    # problem's (cuBLAS with TF32 inputs on a float32 problem); None: the problem's own.
    tolerance: Callable[[object], float] | None = None

    @property
    def name(self) -> str:
        return f"{self.op}/{self.backend}/{self.variant}"

    def mismatch(self, problem) -> str | None:
        """Why this implementation cannot take `problem` at all (dtype, layout), else None."""
        if problem.dtype not in self.dtypes:
            return f"{self.name} does not support {problem.dtype}"
        layout = problem.layout if getattr(problem, "has_tensor_layout", False) else None
        if layout is not None and layout not in self.layouts:
            return f"{self.name} does not support the {layout} layout"
        return None

    def tolerance_for(self, problem) -> float:
        return self.tolerance(problem) if self.tolerance else problem.tolerance()


_REGISTRY: list[Implementation] = []


def register(impl: Implementation) -> Implementation:
    if any(existing.name == impl.name for existing in _REGISTRY):
        raise ValueError(f"implementation {impl.name} is registered twice")
    if impl.provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {PROVIDERS}, got {impl.provider!r}")
    _REGISTRY.append(impl)
    return impl


def implementations(op: str | None = None) -> list[Implementation]:
    return [impl for impl in _REGISTRY if op is None or impl.op == op]


def select(ops: list[str], spec: str, backend: str | None = None) -> list[Implementation]:
    """Implementations for `ops` (on `backend`, "cpu" or "cuda", when given) named by a comma
    list of providers ("ours", "vendor"), "all", variant names ("ours-avx2", "numpy") or full
    names ("gemm/cpu/numpy")."""
    chosen: list[Implementation] = []
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise ValueError("impl must name at least one implementation or provider")
    candidates = [impl for impl in _REGISTRY if impl.op in ops and backend in (None, impl.backend)]
    for token in tokens:
        if token == "all":
            matched = candidates
        elif token in PROVIDERS:
            matched = [impl for impl in candidates if impl.provider == token and impl.default]
        else:
            matched = [impl for impl in candidates if token in (impl.variant, impl.name)]
        if not matched:
            known = sorted({impl.variant for impl in candidates} | set(PROVIDERS) | {"all"})
            raise ValueError(f"impl {token!r} matches no implementation of {ops}; known: {', '.join(known)}")
        chosen.extend(impl for impl in matched if impl not in chosen)
    return chosen


def vendor_missing(module: str) -> Callable[..., str | None]:
    """An unavailable_reason for an optional vendor library: the install hint when it is absent."""
    def reason(problem=None) -> str | None:
        try:
            __import__(module)
        except ImportError:
            return f"unavailable: {module} is not installed; install dlcb-kernels[vendor]"
        return None

    return reason


# Importing the implementation modules registers them.
from . import (  # noqa: E402,F401
    cuda_ours, cupy_vendor, memory_layers, numpy_vendor, ours, ort_vendor, overhead, torch_cuda_vendor, torch_vendor)
from .numpy_vendor import blas_info  # noqa: E402,F401
