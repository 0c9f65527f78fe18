"""cuDNN (and cuBLAS) through PyTorch on the GPU, on the shared device buffers (DLPack views,
no copies): convolution forward and both backward directions with
torch.backends.cudnn.benchmark=True (cuDNN times its algorithms on the first call, during the
bench's warm-up), nn.RNN/LSTM/GRU forward and backward, and torch.matmul as a second GEMM
baseline. Launched on the bench's stream (torch.cuda.ExternalStream).

NHWC problems are given to cuDNN as channels_last tensors: the same memory, viewed as NCHW.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from ..problems.rnn import WEIGHT_NAMES
from . import Implementation, PreparedRun, register
from .gpu_inputs import device_inputs, gpu_unavailable_reason, torch_view


def _unavailable(problem=None) -> str | None:
    reason = gpu_unavailable_reason(problem)
    if reason:
        return reason
    try:
        import torch
    except ImportError:
        return "unavailable: torch is not installed; install dlcb-kernels[vendor] (with a CUDA build of torch)"
    if not torch.cuda.is_available():
        return f"unavailable: torch {torch.__version__} has no CUDA (a CPU-only build, or no device it can use)"
    return None


def _library() -> str:
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {cudnn})"


@contextlib.contextmanager
def _on_stream(device: int, stream: int):
    import torch

    with torch.cuda.device(device):
        if stream:
            with torch.cuda.stream(torch.cuda.ExternalStream(stream, device=f"cuda:{device}")):
                yield torch
        else:
            yield torch


def _gemm() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int, *, device: int = 0, stream: int = 0) -> Iterator[PreparedRun]:
        dev = device_inputs(problem, inputs, device)
        with _on_stream(device, stream) as torch:
            a, b = torch_view(dev["a"]), torch_view(dev["b"])
            a, b = (a.T if problem.trans_a else a), (b.T if problem.trans_b else b)
            c = torch.empty((problem.m, problem.n), dtype=a.dtype, device=a.device)
            tf32 = torch.backends.cuda.matmul.allow_tf32

        def run() -> None:
            with _on_stream(device, stream):
                torch.matmul(a, b, out=c)

        yield PreparedRun(run, c, 1, f"torch.matmul (cuBLAS/cuBLASLt; allow_tf32={tf32})")

    return Implementation("gemm", "cuda", "torch-cuda", "vendor", _library, _unavailable, prepare,
                          dtypes=("float32", "float16", "bfloat16"))


def _as_nchw(tensor, layout: str):
    """The NCHW-indexed view cuDNN takes: NHWC memory becomes a channels_last tensor."""
    return tensor.permute(0, 3, 1, 2) if layout == "NHWC" else tensor


def _from_nchw(tensor, layout: str):
    return tensor.permute(0, 2, 3, 1) if layout == "NHWC" else tensor


def _conv() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int, *, device: int = 0, stream: int = 0) -> Iterator[PreparedRun]:
        dev = device_inputs(problem, inputs, device)
        with _on_stream(device, stream) as torch:
            torch.backends.cudnn.benchmark = True
            # float32 problems are compared in float32: cuDNN's default of TF32 tensor cores
            # for float32 convolutions would round the inputs to 10 mantissa bits.
            torch.backends.cudnn.allow_tf32 = False
            args = problem.conv_args()
            conv = (list(args["stride"]), list(args["padding"]), list(args["dilation"]), False, [0, 0],
                    args["groups"])
            tensors = {name: _as_nchw(torch_view(array), problem.layout) for name, array in dev.items()}
            memory_format = torch.channels_last if problem.layout == "NHWC" else torch.contiguous_format
            prepared = PreparedRun(lambda: None, None, 1,
                                   f"cuDNN via torch (benchmark=True, allow_tf32=False, {problem.layout} as "
                                   f"{'channels_last' if problem.layout == 'NHWC' else 'contiguous'})")
            if problem.direction == "fwd":
                x, w = tensors["x"], tensors["w"]

                def compute():
                    return torch.nn.functional.conv2d(x, w, None, *conv[:3], conv[5])
            else:
                # convolution_backward reads only the shape (and memory format) of the operand
                # it does not differentiate; a real tensor of that layout stands in for it.
                dy = tensors["dy"]
                nchw_x = (problem.n, problem.c, problem.h, problem.w)
                nchw_w = (problem.k, problem.c // problem.groups, problem.r, problem.s)
                if problem.direction == "bwd_data":
                    w = tensors["w"]
                    x = torch.empty(nchw_x, dtype=dy.dtype, device=dy.device, memory_format=memory_format)
                    mask, which = [True, False, False], 0
                else:
                    x = tensors["x"]
                    w = torch.empty(nchw_w, dtype=dy.dtype, device=dy.device, memory_format=memory_format)
                    mask, which = [False, True, False], 1

                def compute():
                    return torch.ops.aten.convolution_backward(dy, x, w, None, *conv, mask)[which]

            def run() -> None:
                with _on_stream(device, stream):
                    prepared.output = _from_nchw(compute(), problem.layout)

            prepared.run = run
            yield prepared

    return Implementation("conv", "cuda", "cudnn", "vendor", _library, _unavailable, prepare,
                          dtypes=("float32", "float16", "bfloat16"), layouts=("NCHW", "NHWC"))


_MODULES = {"vanilla": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _rnn() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int, *, device: int = 0, stream: int = 0) -> Iterator[PreparedRun]:
        dev = device_inputs(problem, inputs, device)
        with _on_stream(device, stream) as torch:
            torch.backends.cudnn.allow_tf32 = False  # float32 stays float32, as for convolutions
            x = torch_view(dev["x"])
            extra = {"nonlinearity": "relu"} if problem.cell == "vanilla" else {}
            layer = getattr(torch.nn, _MODULES[problem.cell])(problem.inputs_per_step, problem.hidden, **extra)
            layer = layer.to(device=x.device, dtype=x.dtype)
            with torch.no_grad():  # cuDNN keeps its own flat weight buffer: the values are copied in
                for name in WEIGHT_NAMES:
                    getattr(layer, f"{name}_l0").copy_(torch_view(dev["weights"][name]))
            layer.flatten_parameters()
            h0 = torch_view(dev["h0"])[None]
            state = (h0, torch_view(dev["c0"])[None]) if problem.cell == "lstm" else h0
            prepared = PreparedRun(lambda: None, None, 1, f"cuDNN via torch.nn.{_MODULES[problem.cell]} (allow_tf32=False)")
            if problem.direction == "fwd":
                def run() -> None:
                    with _on_stream(device, stream), torch.no_grad():
                        prepared.output = layer(x, state)[0]
                prepared.algorithm += " forward under no_grad"
            else:
                y = layer(x, state)[0]
                params = [getattr(layer, f"{name}_l0") for name in WEIGHT_NAMES]
                dy = torch_view(dev["dy"])

                def run() -> None:
                    with _on_stream(device, stream):
                        grads = torch.autograd.grad(y, params, dy, retain_graph=True)
                    prepared.output = dict(zip(WEIGHT_NAMES, grads))
                prepared.algorithm += " backward (autograd to the weights, retain_graph)"
            prepared.run = run
            yield prepared

    return Implementation("rnn", "cuda", "cudnn", "vendor", _library, _unavailable, prepare,
                          dtypes=("float32", "float16", "bfloat16"))


register(_gemm())
register(_conv())
register(_rnn())
