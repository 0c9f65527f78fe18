"""2-D convolution on NVIDIA GPUs with our implicit-GEMM CUDA kernels: the GPU path of
dlcb_kernels.conv2d, conv2d_backward_data and conv2d_backward_filter.

Tensors are C-contiguous GPU arrays of one dtype (float32, float16, bfloat16), in the layout
named: NCHW (x N x C x H x W, w K x C/g x R x S, y N x K x P x Q) or NHWC (x N x H x W x C,
w K x R x S x C/g, y N x P x Q x K: cuDNN's and PyTorch channels_last's memory order).
Accumulation is in float32; the kernel is queued on `stream` and the call returns at once.
"""

from __future__ import annotations

from .._validate import require_choice, require_int, require_int_pair
from ..device_array import DeviceArray
from ._cuda_common import (
    DTYPE_CODES,
    NativeCall,
    compute_capability,
    device_arrays,
    native_module,
    output,
    pick_variant,
    require_contiguous,
    stream_handle,
    workspace_pointer,
)
from .conv import layout_shape, nchw_shape, output_extent

LAYOUTS = ("NCHW", "NHWC")
DIRECTIONS = {"fwd": 0, "bwd_data": 1, "bwd_filter": 2}
# Best first for each dtype: "auto" takes the first that can run the arguments.
VARIANTS = {"float32": ("implicit-gemm-simt",),
            "float16": ("implicit-gemm-wgmma", "implicit-gemm-tc", "implicit-gemm-simt"),
            "bfloat16": ("implicit-gemm-wgmma", "implicit-gemm-tc", "implicit-gemm-simt")}
ALL_VARIANTS = ("implicit-gemm-wgmma", "implicit-gemm-tc", "implicit-gemm-simt")
_INT_LIMIT = 2**31 - 1


def _kcrs(shape, layout):
    k, a, b, c = shape
    return (k, c, a, b) if layout == "NHWC" else (k, a, b, c)


def _w_layout_shape(kcrs, layout):
    k, c, r, s = kcrs
    return (k, r, s, c) if layout == "NHWC" else (k, c, r, s)


def _shape4(shape, name):
    if not isinstance(shape, (tuple, list)) or len(shape) != 4:
        raise ValueError(f"{name} must be a 4-tuple of ints, got {shape!r}")
    return tuple(require_int(v, f"{name}[{i}]", 1) for i, v in enumerate(shape))


def _four_d(view: DeviceArray, name: str) -> None:
    if view.ndim != 4:
        raise ValueError(f"{name} must be 4-D, got shape {view.shape}")
    require_contiguous(view, name)


def conv_cuda(direction: str, first, second, *, shape=None, stride=(1, 1), padding=(0, 0),
              dilation=(1, 1), groups=1, layout="NCHW", out=None, variant="auto", stream=None):
    """One direction on the GPU; returns (result, {"algorithm": variant, "device": index})."""
    result, call = plan_conv(direction, first, second, shape=shape, stride=stride, padding=padding,
                             dilation=dilation, groups=groups, layout=layout, out=out, variant=variant,
                             stream=stream)
    call()
    return result, {"algorithm": call.variant, "device": call.device}


def plan_conv(direction: str, first, second, *, shape=None, stride=(1, 1), padding=(0, 0),
              dilation=(1, 1), groups=1, layout="NCHW", out=None, variant="auto", stream=None):
    """Checks the arguments, picks the variant and sets up its workspace; returns (result,
    NativeCall) without running it.

    fwd: first = x, second = w; bwd_data: first = dy, second = w, shape = x's shape;
    bwd_filter: first = x, second = dy, shape = w's shape (all in `layout`).
    """
    require_choice(direction, "direction", tuple(DIRECTIONS))
    layout = require_choice(layout, "layout", LAYOUTS)
    require_choice(variant, "variant", ("auto",) + ALL_VARIANTS)
    stride_hw = require_int_pair(stride, "stride", 1)
    pad_hw = require_int_pair(padding, "padding", 0)
    dil_hw = require_int_pair(dilation, "dilation", 1)
    groups = require_int(groups, "groups", 1)
    stream = stream_handle(stream)
    names = {"fwd": ("x", "w"), "bwd_data": ("dy", "w"), "bwd_filter": ("x", "dy")}[direction]
    views = device_arrays(dict(zip(names, (first, second))))
    for name, view in views.items():
        _four_d(view, name)
    if direction == "fwd":
        n, c, h, w_ = nchw_shape(views["x"].shape, layout)
        k, cg, r, s = _kcrs(views["w"].shape, layout)
    elif direction == "bwd_data":
        n, c, h, w_ = nchw_shape(_shape4(shape, "input_shape"), layout)
        k, cg, r, s = _kcrs(views["w"].shape, layout)
    else:
        n, c, h, w_ = nchw_shape(views["x"].shape, layout)
        k, cg, r, s = _kcrs(_shape4(shape, "weight_shape"), layout)
    if min(n, c, h, w_, k, cg, r, s) < 1:
        raise ValueError("every extent of x, w and dy must be >= 1")
    if c % groups or k % groups:
        raise ValueError(f"groups={groups} must divide the input channels ({c}) and the filters ({k})")
    if cg * groups != c:
        raise ValueError(f"channel mismatch: the input has C={c} channels but the filters take {cg} * groups "
                         f"= {cg * groups}")
    p = output_extent(h, r, stride_hw[0], pad_hw[0], dil_hw[0], "height")
    q = output_extent(w_, s, stride_hw[1], pad_hw[1], dil_hw[1], "width")
    x_shape, w_shape = layout_shape((n, c, h, w_), layout), _w_layout_shape((k, cg, r, s), layout)
    y_shape = layout_shape((n, k, p, q), layout)
    expected = {"x": x_shape, "w": w_shape, "dy": y_shape}
    for name, view in views.items():
        if view.shape != expected[name]:
            raise ValueError(f"{name} must have shape {expected[name]} ({layout}) for these arguments, got {view.shape}")
    for extent in (n * c * h * w_, k * cg * r * s, n * k * p * q):
        if extent > _INT_LIMIT:
            raise ValueError("every tensor must have fewer than 2**31 elements")
    template = next(iter(views.values()))
    ext = native_module(template.device)
    result_shape = {"fwd": y_shape, "bwd_data": x_shape, "bwd_filter": w_shape}[direction]
    result, vr = output(out, "out", template, result_shape, template.dtype, views)
    pointers = {"fwd": (views.get("x"), views.get("w"), vr),
                "bwd_data": (vr, views.get("w"), views.get("dy")),
                "bwd_filter": (views.get("x"), vr, views.get("dy"))}[direction]
    args = {"n": n, "c": c, "h": h, "w": w_, "k": k, "r": r, "s": s,
            "pad_h": pad_hw[0], "pad_w": pad_hw[1], "stride_h": stride_hw[0], "stride_w": stride_hw[1],
            "dil_h": dil_hw[0], "dil_w": dil_hw[1], "groups": groups,
            "layout": LAYOUTS.index(layout), "direction": DIRECTIONS[direction],
            "dtype": DTYPE_CODES[template.dtype],
            "x": pointers[0].ptr, "filter": pointers[1].ptr, "y": pointers[2].ptr, "workspace": 0}
    cc = compute_capability(template.device)
    chosen = pick_variant(variant, list(VARIANTS[template.dtype]),
                          lambda name: ext.conv_unsupported_reason(name, args, cc), f"conv {direction}")
    args["workspace"] = workspace_pointer(template, ext.conv_workspace_bytes(chosen, args))
    return result, NativeCall(ext.conv, chosen, args, template.device, stream)
