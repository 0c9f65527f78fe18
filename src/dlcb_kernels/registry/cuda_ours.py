"""Our CUDA kernels in the registry: GEMM (the "auto" choice, and every rung of the ladder on
its own), implicit-GEMM convolution in three directions, RNN layers (auto, persistent, fused).

A prepared GPU run is the NativeCall that the ops modules' plan_* functions build: the
arguments are checked once in prepare(), and a timed call queues the kernel and nothing else.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from .. import __version__ as package_version
from .. import cuda
from ..ops import conv_cuda, gemm_cuda, rnn_cuda
from ..ops._cuda_common import compute_capability
from . import Implementation, PreparedRun, register
from .gpu_inputs import device_inputs, gpu_unavailable_reason

GPU_DTYPES = ("float32", "float16", "bfloat16")


def _library() -> str:
    status = cuda.status()
    runtime = status.runtime_version
    built = f"CUDA runtime {runtime // 1000}.{runtime % 1000 // 10}" if runtime else "CUDA"
    return f"dlcb_kernels {package_version} ({built}, static)"


def _technique(kind: str, name: str, dtype: str) -> str:
    ext = cuda.module()
    listing = {"gemm": ext.gemm_variants, "conv": ext.conv_variants, "rnn": ext.rnn_variants}[kind]()
    for entry in listing:
        if entry["name"] == name and entry["dtype"] == dtype:
            return f"{name}: {entry['technique']}"
    return name


def _gemm(variant: str, dtypes: tuple[str, ...], default: bool) -> Implementation:
    def unavailable(problem=None) -> str | None:
        reason = gpu_unavailable_reason(problem)
        if reason or problem is None:
            return reason
        if variant == "auto":
            return None
        # Alignment-only reasons cannot arise: the bench's buffers are freshly allocated.
        args = {"m": problem.m, "n": problem.n, "k": problem.k, "dtype": gemm_cuda.DTYPE_CODES[problem.dtype],
                "a": 1 << 20, "lda": problem.m if problem.trans_a else problem.k, "trans_a": problem.trans_a,
                "b": 1 << 20, "ldb": problem.k if problem.trans_b else problem.n, "trans_b": problem.trans_b,
                "c": 1 << 20, "ldc": problem.n, "alpha": 1.0, "beta": 0.0}
        reason = cuda.module().gemm_unsupported_reason(variant, args, compute_capability(0))
        return f"unavailable: {reason}" if reason else None

    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int, *, device: int = 0, stream: int = 0) -> Iterator[PreparedRun]:
        dev = device_inputs(problem, inputs, device)
        c, call = gemm_cuda.plan_gemm(dev["a"], dev["b"], trans_a=problem.trans_a, trans_b=problem.trans_b,
                                      variant=variant, stream=stream)
        yield PreparedRun(call, c, 1, _technique("gemm", call.variant, problem.dtype))

    name = "ours-cuda" if variant == "auto" else f"cuda-{variant}"
    return Implementation("gemm", "cuda", name, "ours", _library, unavailable, prepare, default=default,
                          dtypes=dtypes)


def _conv(variant: str, default: bool) -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int, *, device: int = 0, stream: int = 0) -> Iterator[PreparedRun]:
        dev = device_inputs(problem, inputs, device)
        first, second, shape = {"fwd": ("x", "w", None), "bwd_data": ("dy", "w", problem.x_shape),
                                "bwd_filter": ("x", "dy", problem.w_shape)}[problem.direction]
        out, call = conv_cuda.plan_conv(problem.direction, dev[first], dev[second], shape=shape,
                                        layout=problem.layout, variant=variant, stream=stream,
                                        **problem.conv_args())
        yield PreparedRun(call, out, 1, _technique("conv", call.variant, problem.dtype))

    name = "ours-cuda" if variant == "auto" else f"cuda-{variant}"
    tensor_cores = variant in ("implicit-gemm-tc", "implicit-gemm-wgmma")  # 16-bit NHWC only
    return Implementation("conv", "cuda", name, "ours", _library, gpu_unavailable_reason, prepare,
                          default=default, dtypes=("float16", "bfloat16") if tensor_cores else GPU_DTYPES,
                          layouts=("NHWC",) if tensor_cores else ("NCHW", "NHWC"))


def _rnn(variant: str, default: bool) -> Implementation:
    def unavailable(problem=None) -> str | None:
        reason = gpu_unavailable_reason(problem)
        if reason or problem is None:
            return reason
        if problem.direction != "fwd":
            return "unavailable: our CUDA RNN kernels run forward only"
        return None

    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int, *, device: int = 0, stream: int = 0) -> Iterator[PreparedRun]:
        dev = device_inputs(problem, inputs, device)
        c0 = dev.get("c0")
        (y, _, _), call = rnn_cuda.plan_rnn(dev["x"], dev["h0"], dev["weights"], cell=problem.cell, c0=c0,
                                            variant=variant, stream=stream)
        yield PreparedRun(call, y, 1, _technique("rnn", call.variant, problem.dtype))

    name = "ours-cuda" if variant == "auto" else f"cuda-{variant}"
    dtypes = ("float16", "bfloat16") if variant == "fused-sequence-tc" else GPU_DTYPES
    return Implementation("rnn", "cuda", name, "ours", _library, unavailable, prepare, default=default,
                          dtypes=dtypes)


register(_gemm("auto", GPU_DTYPES, True))
for _name in gemm_cuda.ALL_VARIANTS:
    register(_gemm(_name, ("float32",) if _name.startswith("sgemm") else ("float16", "bfloat16"), False))
register(_conv("auto", True))
for _name in conv_cuda.ALL_VARIANTS:
    register(_conv(_name, False))
register(_rnn("auto", True))
for _name in rnn_cuda.VARIANTS:
    register(_rnn(_name, False))
