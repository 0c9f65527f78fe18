"""2-D convolution (forward, backward data, backward filter) with our own kernels: this module
runs numpy arrays on the CPU; GPU arrays (CuPy, torch, DLPack) go to our CUDA implicit-GEMM
kernels (ops/conv_cuda.py: float32/float16/bfloat16, and there NHWC filters are K x R x S x C/g,
cuDNN's order), chosen by `variant` and queued on `stream`.

Tensors are float32 numpy arrays. Layout "NCHW" (default) is native: x is (N, C, H, W), the
filters w are (K, C/groups, R, S) and y is (N, K, P, Q) with
P = (H + 2*pad_h - dil_h*(R-1) - 1) // stride_h + 1 (Q likewise). Layout "NHWC" is supported by
transposing copies: x, dy and results are (N, H, W, C) / (N, P, Q, K), the filters stay
(K, C/groups, R, S), and the algorithm name says "nhwc-transpose+".

Inputs that are not C-contiguous are copied to contiguous arrays first. A batch of zero images
(N = 0) is allowed and gives an empty result (for the filter gradient, zeros: an empty sum).
NaN and Inf propagate like any other value, over the taps that read real pixels only: zero
padding contributes nothing, even against an infinite weight (ops/conv_nonfinite.py), whichever
algorithm runs. Every argument is checked before native code runs;
errors name the argument (TypeError for a wrong kind of value, ValueError for a bad value).
"""

from __future__ import annotations

import numpy as np

from .. import _cpu
from .._validate import (
    contiguous,
    require_array,
    require_choice,
    require_dtype,
    require_int,
    require_int_pair,
    require_memory,
    require_ndim,
    require_output,
    require_threads,
)
from ..device_array import is_device_array
from . import conv_nonfinite
from .gemm import resolve_isa

LAYOUTS = ("NCHW", "NHWC")


class _Params:
    """Checked stride, padding, dilation, groups, layout and threads."""

    def __init__(self, stride, padding, dilation, groups, layout, threads, isa):
        self.stride = require_int_pair(stride, "stride", 1)
        self.padding = require_int_pair(padding, "padding", 0)
        self.dilation = require_int_pair(dilation, "dilation", 1)
        self.groups = require_int(groups, "groups", 1)
        self.layout = require_choice(layout, "layout", LAYOUTS)
        self.threads = require_threads(threads)
        self.isa = resolve_isa(isa)

    def native(self):
        return (*self.stride, *self.padding, *self.dilation, self.groups, self.threads, self.isa)

    def output_size(self, hw, rs) -> tuple[int, int]:
        return tuple(output_extent(size, k, st, pad, dil, axis) for axis, size, k, st, pad, dil
                     in zip(("height", "width"), hw, rs, self.stride, self.padding, self.dilation))


def output_extent(size: int, k: int, stride: int, pad: int, dil: int, axis: str) -> int:
    """Output height or width (`axis`) of a convolution; ValueError when below one pixel."""
    span = dil * (k - 1) + 1
    n = (size + 2 * pad - span) // stride + 1
    if n < 1:
        raise ValueError(
            f"output {axis} would be {n} < 1: the {'dilated ' if dil > 1 else ''}filter spans {span} but the "
            f"padded input has {size + 2 * pad} (input {size}, padding {pad})"
        )
    return n


def _on_gpu(direction, first, second, shape, stride, padding, dilation, groups, layout, out, threads, isa,
            variant, stream):
    """GPU arrays: our CUDA implicit-GEMM kernels (ops/conv_cuda.py)."""
    if threads is not None:
        raise ValueError("threads applies to CPU arrays; these are GPU arrays")
    if isa != "auto":
        raise ValueError("isa applies to CPU arrays; these are GPU arrays")
    from .conv_cuda import conv_cuda

    return conv_cuda(direction, first, second, shape=shape, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, layout=layout, out=out, variant=variant, stream=stream)


def _cpu_only(variant, stream) -> None:
    if variant != "auto" or stream is not None:
        raise ValueError("variant and stream apply to GPU arrays only; these arrays are on the host")


def _tensor(x, name: str) -> np.ndarray:
    x = require_array(x, name)
    require_dtype(x, name, np.float32)
    require_ndim(x, name, 4)
    return x


def _to_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    """A C-contiguous NCHW array with x's values (x itself when it already is one)."""
    if layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    return contiguous(x)


def _shape4(shape, name: str) -> tuple[int, int, int, int]:
    if not isinstance(shape, (tuple, list)) or len(shape) != 4:
        raise ValueError(f"{name} must be a 4-tuple of ints, got {shape!r}")
    return tuple(require_int(v, f"{name}[{i}]", 0) for i, v in enumerate(shape))


def _check_geometry(p, nchw, kcrs, *, x_name: str, x_shown, w_name: str, w_index: str):
    """The checks every direction shares: non-empty filters and images, groups dividing both
    channel counts, the filters' channels matching the image's, and an output of at least one
    pixel. x_name/w_name name the arguments the shapes came from (w_index: how to index w's
    shape in a message); returns the output size (P, Q)."""
    n, c, h, wd = nchw
    k, cg, r, s = kcrs
    if k < 1 or r < 1 or s < 1 or cg < 1:
        raise ValueError(f"{w_name} must have a non-zero shape (K, C/groups, R, S), got {tuple(kcrs)}")
    if c < 1 or h < 1 or wd < 1:
        raise ValueError(f"{x_name} must have at least one channel, row and column, got shape {tuple(x_shown)}")
    if c % p.groups:
        raise ValueError(f"groups={p.groups} must divide the input channels ({x_name}'s C = {c})")
    if k % p.groups:
        raise ValueError(f"groups={p.groups} must divide the output channels ({w_index}[0] = {k})")
    if cg * p.groups != c:
        raise ValueError(f"channel mismatch: {x_name} has C={c} channels but {w_index}[1] * groups = {cg} * "
                         f"{p.groups} = {cg * p.groups}")
    pq = p.output_size((h, wd), (r, s))
    # The output, a copy of the input and of the filters, and the zero-padded planes some
    # algorithms read: checked before anything is copied or allocated.
    padded = n * c * (h + 2 * p.padding[0]) * (wd + 2 * p.padding[1])
    require_memory(4 * (n * k * pq[0] * pq[1] + n * c * h * wd + k * cg * r * s + padded),
                   f"this convolution ({x_name} {tuple(x_shown)}, padding {p.padding}, stride {p.stride})")
    return pq


def nchw_shape(shape, layout):
    n, a, b, c = shape
    return (n, c, a, b) if layout == "NHWC" else (n, a, b, c)


def layout_shape(nchw, layout):
    n, c, h, w = nchw
    return (n, h, w, c) if layout == "NHWC" else (n, c, h, w)


def _finish(result_nchw, out, layout, algorithm, threads):
    """Writes the NCHW result into out (if given) in the caller's layout; returns (result, info)."""
    name = ("nhwc-transpose+" if layout == "NHWC" else "") + algorithm
    result = result_nchw.transpose(0, 2, 3, 1) if layout == "NHWC" else result_nchw
    if out is not None and result is not out:
        out[...] = result
        result = out
    elif layout == "NHWC":
        result = np.ascontiguousarray(result)
    return result, {"algorithm": name, "threads": int(threads)}


def conv2d_with_info(x, w, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, layout="NCHW",
                     out=None, threads=None, isa="auto", variant="auto", stream=None):
    """conv2d, also returning {"algorithm": ..., "threads": ...}: what ran and on how many threads.

    Algorithms: "gemm-1x1" (1x1 filter, stride 1, no padding: one GEMM per image and group on the
    tensors in place), "gemm-1x1-gathered" (any other 1x1 layer: the same GEMM between compact
    copies of the pixels that read the input, zeros where an output reads only padding),
    "implicit-im2col-gemm" (one GEMM per image and group whose B operand, the im2col matrix, is
    packed panel by panel straight from the image) or "padded-shifted-gemm-t" (stride <= 4 and
    not 1x1, one group, at most 128 filters, at least 512 output pixels counted over the padded
    width of which at least 3/4 are real: y[n]^T = im2col(x[n])^T w^T, whose A operand is read
    as contiguous shifted windows of a zero-padded copy of the image; a strided layer reads phase
    planes of it and is named "padded-shifted-gemm-t (stride 2 phase planes)" or "... (strided
    phase planes)").
    """
    if is_device_array(x) or is_device_array(w):
        return _on_gpu("fwd", x, w, None, stride, padding, dilation, groups, layout, out, threads, isa, variant, stream)
    _cpu_only(variant, stream)
    p = _Params(stride, padding, dilation, groups, layout, threads, isa)
    x_in, w_in = _tensor(x, "x"), _tensor(w, "w")
    n, c, h, wd = nchw_shape(x_in.shape, p.layout)
    k = w_in.shape[0]
    pq = _check_geometry(p, (n, c, h, wd), w_in.shape, x_name="x", x_shown=x_in.shape, w_name="w", w_index="w.shape")
    y_shape = (n, k, *pq)
    if out is not None:
        out = require_output(out, "out", layout_shape(y_shape, p.layout), np.float32, {"x": x_in, "w": w_in})
    x_n, w_n = _to_nchw(x_in, p.layout), contiguous(w_in)
    w_n, w_bad = conv_nonfinite.split(w_n)
    y = out if (out is not None and p.layout == "NCHW" and out.flags.aligned) else np.empty(y_shape, np.float32)
    algorithm, used, _ = _cpu.conv2d_forward(x_n, w_n, y, *p.native())
    if w_bad is not None:
        conv_nonfinite.add_forward(y, x_n, w_bad, p.stride, p.padding, p.dilation, p.groups)
    return _finish(y, out, p.layout, algorithm, used)


def conv2d(x, w, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, layout="NCHW", out=None,
           threads=None, isa="auto", variant="auto", stream=None):
    """y = conv(x, w) (cross-correlation, as in deep-learning frameworks), float32.

    x: (N, C, H, W) ("NCHW", native) or (N, H, W, C) ("NHWC", by transposing copies); w: (K,
    C/groups, R, S) in either layout. stride, padding (symmetric, per side) and dilation take an
    int or a (height, width) pair. out, when given, must be a C-contiguous float32 array of y's
    shape sharing no memory with x or w; it is overwritten and returned. threads defaults to
    OpenMP's (OMP_NUM_THREADS); isa picks the GEMM micro-kernel ("auto": DLCB_ISA when set, else
    the best this CPU runs). Non-contiguous inputs are copied. N = 0 gives an empty y.
    """
    return conv2d_with_info(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                            layout=layout, out=out, threads=threads, isa=isa,
                            variant=variant, stream=stream)[0]


def conv2d_backward_data_with_info(dy, w, *, input_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                                   groups=1, layout="NCHW", out=None, threads=None, isa="auto", variant="auto",
                                   stream=None):
    """conv2d_backward_data, also returning {"algorithm": ..., "threads": ...}.

    Algorithms: "gemm-1x1" (1x1, stride 1, no padding: dx = W^T dy per image), "gemm-1x1-gathered"
    (a padded 1x1 layer: the same between the pixels that read the input), "flipped-forward"
    (stride 1 and padding <= dilation * (filter - 1): a forward implicit-im2col convolution of dy
    with the flipped, channel-transposed filters) or "gemm-col2im" (otherwise: W^T dy by GEMM,
    then scatter-added into dx).
    """
    if is_device_array(dy) or is_device_array(w):
        return _on_gpu("bwd_data", dy, w, input_shape, stride, padding, dilation, groups, layout, out, threads,
                       isa, variant, stream)
    _cpu_only(variant, stream)
    p = _Params(stride, padding, dilation, groups, layout, threads, isa)
    dy_in, w_in = _tensor(dy, "dy"), _tensor(w, "w")
    n, c, h, wd = nchw_shape(_shape4(input_shape, "input_shape"), p.layout)
    k = w_in.shape[0]
    pq = _check_geometry(p, (n, c, h, wd), w_in.shape, x_name="input_shape", x_shown=input_shape, w_name="w",
                         w_index="w.shape")
    want_dy = layout_shape((n, k, *pq), p.layout)
    if dy_in.shape != want_dy:
        raise ValueError(
            f"dy must have shape {want_dy} (the output of input_shape={tuple(input_shape)} with these filters and "
            f"parameters), got {dy_in.shape}"
        )
    dx_shape = (n, c, h, wd)
    if out is not None:
        out = require_output(out, "out", layout_shape(dx_shape, p.layout), np.float32, {"dy": dy_in, "w": w_in})
    dy_n, w_n = _to_nchw(dy_in, p.layout), contiguous(w_in)
    w_n, w_bad = conv_nonfinite.split(w_n)
    dx = out if (out is not None and p.layout == "NCHW" and out.flags.aligned) else np.empty(dx_shape, np.float32)
    algorithm, used, _ = _cpu.conv2d_backward_data(dy_n, w_n, dx, *p.native())
    if w_bad is not None:
        conv_nonfinite.add_backward_data(dx, dy_n, w_bad, p.stride, p.padding, p.dilation, p.groups)
    return _finish(dx, out, p.layout, algorithm, used)


def conv2d_backward_data(dy, w, *, input_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                         layout="NCHW", out=None, threads=None, isa="auto", variant="auto", stream=None):
    """dx, the gradient of conv2d with respect to x (a transposed convolution of dy), float32.

    dy: (N, K, P, Q) (or (N, P, Q, K) for "NHWC"); w: (K, C/groups, R, S); input_shape: x's shape
    in the same layout (several input sizes give the same output size, so it must be given).
    Other arguments as in conv2d.
    """
    return conv2d_backward_data_with_info(dy, w, input_shape=input_shape, stride=stride, padding=padding,
                                          dilation=dilation, groups=groups, layout=layout, out=out,
                                          threads=threads, isa=isa, variant=variant, stream=stream)[0]


def conv2d_backward_filter_with_info(x, dy, *, weight_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                                     groups=1, layout="NCHW", out=None, threads=None, isa="auto", variant="auto",
                                     stream=None):
    """conv2d_backward_filter, also returning {"algorithm": ..., "threads": ...}.

    Algorithms: "gemm-1x1" (1x1, stride 1, no padding: dw = sum_n dy[n] x[n]^T),
    "gemm-1x1-gathered" (any other 1x1 layer: the same between the pixels that read the input),
    "padded-shifted-gemm" (stride <= 4, one group, enough of the padded-width grid real for the
    filter count, (7 + K) / (35 + K): dy spread over that grid times contiguous shifted windows of
    a zero-padded copy of the image; "... (strided phase planes)" for a strided layer) or
    "implicit-im2col-gemm" (dw = sum_n dy[n] im2col(x[n])^T with the transposed im2col matrix
    packed panel by panel from the image, small images several to a GEMM).
    """
    if is_device_array(x) or is_device_array(dy):
        return _on_gpu("bwd_filter", x, dy, weight_shape, stride, padding, dilation, groups, layout, out, threads,
                       isa, variant, stream)
    _cpu_only(variant, stream)
    p = _Params(stride, padding, dilation, groups, layout, threads, isa)
    x_in, dy_in = _tensor(x, "x"), _tensor(dy, "dy")
    k, cg, r, s = _shape4(weight_shape, "weight_shape")
    n, c, h, wd = nchw_shape(x_in.shape, p.layout)
    pq = _check_geometry(p, (n, c, h, wd), (k, cg, r, s), x_name="x", x_shown=x_in.shape, w_name="weight_shape",
                         w_index="weight_shape")
    want_dy = layout_shape((n, k, *pq), p.layout)
    if dy_in.shape != want_dy:
        raise ValueError(
            f"dy must have shape {want_dy} (the output of x {x_in.shape} with weight_shape={tuple(weight_shape)} "
            f"and these parameters), got {dy_in.shape}"
        )
    dw_shape = (k, cg, r, s)
    if out is not None:
        out = require_output(out, "out", dw_shape, np.float32, {"x": x_in, "dy": dy_in})
    x_n, dy_n = _to_nchw(x_in, p.layout), _to_nchw(dy_in, p.layout)
    dy_n, dy_bad = conv_nonfinite.split(dy_n)
    dw = out if out is not None and out.flags.aligned else np.empty(dw_shape, np.float32)
    algorithm, used, _ = _cpu.conv2d_backward_filter(x_n, dy_n, dw, *p.native())
    if dy_bad is not None:
        conv_nonfinite.add_backward_filter(dw, x_n, dy_bad, p.stride, p.padding, p.dilation, p.groups)
    name = ("nhwc-transpose+" if p.layout == "NHWC" else "") + algorithm
    if out is not None and dw is not out:  # out not aligned: computed beside it
        out[...] = dw
        dw = out
    return dw, {"algorithm": name, "threads": int(used)}


def conv2d_backward_filter(x, dy, *, weight_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                           layout="NCHW", out=None, threads=None, isa="auto", variant="auto", stream=None):
    """dw, the gradient of conv2d with respect to w, summed over the batch, float32.

    x: (N, C, H, W) (or (N, H, W, C) for "NHWC"); dy: (N, K, P, Q) (or (N, P, Q, K)); weight_shape:
    (K, C/groups, R, S) in either layout. Other arguments as in conv2d; out has weight_shape.
    """
    return conv2d_backward_filter_with_info(x, dy, weight_shape=weight_shape, stride=stride, padding=padding,
                                            dilation=dilation, groups=groups, layout=layout, out=out,
                                            threads=threads, isa=isa, variant=variant, stream=stream)[0]
