"""numpy and the BLAS it loaded (OpenBLAS in the PyPI wheels): always available.

GEMM is numpy.matmul; convolution is im2col + matmul per image and group; RNNs are per-step
matmuls with numpy element-wise math (dlcb_kernels.numpy_ops, run in float32). BLAS threads are
pinned with threadpoolctl.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from .. import numpy_ops
from . import Implementation, PreparedRun, register


def _threadpoolctl_missing(problem=None) -> str | None:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return "threadpoolctl is not installed, so numpy's BLAS threads cannot be pinned: pip install threadpoolctl"
    return None


def blas_info() -> list[dict]:
    """The BLAS libraries numpy loaded, with vendor, version, threading layer and kernel core."""
    missing = _threadpoolctl_missing()
    if missing:
        return [{"error": missing}]
    from threadpoolctl import threadpool_info

    np.ones(1) @ np.ones(1)  # make sure numpy's BLAS is loaded
    return [info for info in threadpool_info() if info.get("user_api") == "blas"]


def _library() -> str:
    blas = ", ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, {b.get('threading_layer')})"
        for b in blas_info()
    )
    return f"numpy {np.__version__} / {blas or 'unknown BLAS'}"


@contextlib.contextmanager
def _blas_threads(threads: int):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def _gemm() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        a = inputs["a"].T if problem.trans_a else inputs["a"]
        b = inputs["b"].T if problem.trans_b else inputs["b"]
        c = np.empty((problem.m, problem.n), dtype=problem.dtype)
        with _blas_threads(threads):
            def run() -> None:
                np.matmul(a, b, out=c)

            yield PreparedRun(run, c, threads, "sgemm via numpy.matmul")

    return Implementation("gemm", "cpu", "numpy", "vendor", _library, _threadpoolctl_missing, prepare)


def _conv() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        out = np.empty(problem.output_shape(), dtype=problem.dtype)
        args = problem.conv_args()
        if problem.direction == "fwd":
            def run() -> None:
                numpy_ops.conv2d_forward(inputs["x"], inputs["w"], out=out, **args)
        elif problem.direction == "bwd_data":
            def run() -> None:
                numpy_ops.conv2d_backward_data(inputs["dy"], inputs["w"], problem.x_shape, out=out, **args)
        else:
            def run() -> None:
                numpy_ops.conv2d_backward_filter(inputs["x"], inputs["dy"], problem.w_shape, out=out, **args)
        with _blas_threads(threads):
            yield PreparedRun(run, out, threads, "im2col per image and group + sgemm via numpy.matmul"
                              + (" + col2im" if problem.direction == "bwd_data" else ""))

    return Implementation("conv", "cpu", "numpy-im2col", "vendor", _library, _threadpoolctl_missing, prepare)


def _rnn() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        x, h0, weights, c0 = inputs["x"], inputs["h0"], inputs["weights"], inputs.get("c0")
        prepared = PreparedRun(lambda: None, None, threads)
        if problem.direction == "fwd":
            def run() -> None:
                prepared.output = numpy_ops.rnn_forward(x, h0, weights, problem.cell, c0)[0]
            algorithm = "input projection as one matmul, then a matmul and numpy element-wise math per step"
        else:
            saved = numpy_ops.rnn_forward(x, h0, weights, problem.cell, c0)[3]

            def run() -> None:
                prepared.output = numpy_ops.rnn_backward(saved, weights, inputs["dy"])
            algorithm = "backprop through time: a matmul per step, weight gradients as single matmuls"
        prepared.run, prepared.algorithm = run, algorithm
        with _blas_threads(threads):
            yield prepared

    return Implementation("rnn", "cpu", "numpy", "vendor", _library, _threadpoolctl_missing, prepare)


register(_gemm())
register(_conv())
register(_rnn())
