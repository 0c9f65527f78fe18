"""PyTorch on the CPU: GEMM (MKL or OpenBLAS, whichever the build uses), convolution forward and
backward (oneDNN when the build has it), nn.RNN/LSTM/GRU forward and backward.

Optional (the `vendor` extra): without torch the table records the implementation as
unavailable. Tensors wrap the problem's numpy arrays without copying (torch.from_numpy), and
torch runs on the run's thread count (torch.set_num_threads, restored afterwards).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from ..layer_runners import torch_threads
from ..problems.rnn import WEIGHT_NAMES
from . import Implementation, PreparedRun, register, vendor_missing

_unavailable = vendor_missing("torch")


def _library() -> str:
    import torch

    config = torch.__config__.show()
    blas = next((part.split("=", 1)[1] for part in config.replace(",", "\n").split() if part.startswith("BLAS_INFO=")),
                "unknown")
    onednn = f"oneDNN {torch.backends.mkldnn.is_available() and 'on' or 'off'}"
    return f"torch {torch.__version__} (BLAS {blas}, {onednn})"


def _gemm() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        with torch_threads(threads) as torch:
            a = torch.from_numpy(inputs["a"])
            b = torch.from_numpy(inputs["b"])
            a, b = (a.T if problem.trans_a else a), (b.T if problem.trans_b else b)
            c = np.empty((problem.m, problem.n), dtype=problem.dtype)
            c_t = torch.from_numpy(c)

            def run() -> None:
                torch.matmul(a, b, out=c_t)

            yield PreparedRun(run, c, threads, "torch.matmul (the build's BLAS sgemm)")

    return Implementation("gemm", "cpu", "torch", "vendor", _library, _unavailable, prepare)


def _conv_algorithm(torch) -> str:
    if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
        return "ATen convolution (oneDNN enabled: torch picks it for float32 CPU convolutions it supports)"
    return "ATen convolution (oneDNN disabled: im2col + BLAS)"


def _conv() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        with torch_threads(threads) as torch:
            args = problem.conv_args()
            conv = (list(args["stride"]), list(args["padding"]), list(args["dilation"]), False, [0, 0],
                    args["groups"])
            tensors = {name: torch.from_numpy(array) for name, array in inputs.items()}
            prepared = PreparedRun(lambda: None, None, threads, _conv_algorithm(torch))
            if problem.direction == "fwd":
                x, w = tensors["x"], tensors["w"]

                def run() -> None:
                    prepared.output = torch.nn.functional.conv2d(x, w, None, *conv[:3], conv[5]).numpy()
            else:
                # convolution_backward reads only the shape of the operand it does not need; an
                # expanded scalar stands in for it, as torch.nn.grad does.
                dy = tensors["dy"]
                if problem.direction == "bwd_data":
                    w, x = tensors["w"], dy.new_empty(1).expand(problem.x_shape)
                    mask, which = [True, False, False], 0
                else:
                    x, w = tensors["x"], dy.new_empty(1).expand(problem.w_shape)
                    mask, which = [False, True, False], 1

                def run() -> None:
                    grads = torch.ops.aten.convolution_backward(dy, x, w, None, *conv, mask)
                    prepared.output = grads[which].numpy()
            prepared.run = run
            yield prepared

    return Implementation("conv", "cpu", "torch", "vendor", _library, _unavailable, prepare)


_MODULES = {"vanilla": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _rnn() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        with torch_threads(threads) as torch:
            extra = {"nonlinearity": "relu"} if problem.cell == "vanilla" else {}
            layer = getattr(torch.nn, _MODULES[problem.cell])(problem.inputs_per_step, problem.hidden, **extra)
            with torch.no_grad():
                for name in WEIGHT_NAMES:
                    getattr(layer, f"{name}_l0").copy_(torch.from_numpy(inputs["weights"][name]))
            x = torch.from_numpy(inputs["x"])
            h0 = torch.from_numpy(inputs["h0"])[None]
            state = (h0, torch.from_numpy(inputs["c0"])[None]) if problem.cell == "lstm" else h0
            prepared = PreparedRun(lambda: None, None, threads, f"torch.nn.{_MODULES[problem.cell]}")
            if problem.direction == "fwd":
                def run() -> None:
                    with torch.no_grad():
                        prepared.output = layer(x, state)[0].numpy()
                prepared.algorithm += " forward under no_grad"
            else:
                # Forward once with autograd; backward to the weights only (x needs no gradient).
                y = layer(x, state)[0]
                params = [getattr(layer, f"{name}_l0") for name in WEIGHT_NAMES]
                dy = torch.from_numpy(inputs["dy"])

                def run() -> None:
                    grads = torch.autograd.grad(y, params, dy, retain_graph=True)
                    prepared.output = {name: g.numpy() for name, g in zip(WEIGHT_NAMES, grads)}
                prepared.algorithm += " backward (autograd to the weights, retain_graph)"
            prepared.run = run
            yield prepared

    return Implementation("rnn", "cpu", "torch", "vendor", _library, _unavailable, prepare)


register(_gemm())
register(_conv())
register(_rnn())
