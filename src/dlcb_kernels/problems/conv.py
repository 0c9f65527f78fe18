"""The 2-D convolution problem, in one of the three directions DeepBench times for training.

Shapes follow DeepBench's conv list: input N x C x H x W, K filters of C/groups x R x S (R the
filter height, S its width), padding, stride (and dilation, which DeepBench does not use).
Layouts as cuDNN names them: NCHW (filters K x C/g x R x S) or NHWC (input N x H x W x C,
output N x P x Q x K, filters K x R x S x C/g).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import numpy_ops
from ._common import (
    DTYPES,
    check_choice,
    check_dims,
    from_params,
    itemsize,
    output_rounding,
    relative_error,
    sample,
    storage,
)

DIRECTIONS = ("fwd", "bwd_data", "bwd_filter")
LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class ConvProblem:
    """y = conv(x, w) (fwd), dx from dy and w (bwd_data), or dw from x and dy (bwd_filter).

    FLOPs = 2 N K (C/groups) R S P Q for every direction: DeepBench's convention, which counts
    the direct algorithm's work. An algorithm doing less arithmetic (Winograd, FFT) can then
    show more "GFLOP/s" than the device's peak; records flag that (exceeds_peak). Minimum
    bytes = reading the two operands once and writing the result once.
    """

    n: int
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    pad_h: int = 0
    pad_w: int = 0
    stride_h: int = 1
    stride_w: int = 1
    dil_h: int = 1
    dil_w: int = 1
    groups: int = 1
    direction: str = "fwd"
    dtype: str = "float32"
    layout: str = "NCHW"

    op = "conv"
    has_tensor_layout = True  # implementations declare the layouts they take

    def __post_init__(self):
        check_dims(self, ("n", "c", "h", "w", "k", "r", "s", "stride_h", "stride_w", "dil_h", "dil_w", "groups"),
                   minimum=1)
        check_dims(self, ("pad_h", "pad_w"), minimum=0)
        check_choice(self, "direction", DIRECTIONS)
        check_choice(self, "dtype", DTYPES)
        check_choice(self, "layout", LAYOUTS)
        if self.c % self.groups or self.k % self.groups:
            raise ValueError(f"ConvProblem.groups={self.groups} must divide c={self.c} and k={self.k}")
        if self.p < 1 or self.q < 1:
            raise ValueError(f"ConvProblem: the {self.r}x{self.s} filter (dilation {self.dil_h}x{self.dil_w}) does "
                             f"not fit the padded {self.h}x{self.w} input: output would be {self.p}x{self.q}")

    # Shapes --------------------------------------------------------------------------------------

    @property
    def p(self) -> int:
        return numpy_ops.conv_output_size(self.h, self.r, self.pad_h, self.stride_h, self.dil_h)

    @property
    def q(self) -> int:
        return numpy_ops.conv_output_size(self.w, self.s, self.pad_w, self.stride_w, self.dil_w)

    @property
    def x_shape(self) -> tuple:
        return (self.n, self.c, self.h, self.w) if self.layout == "NCHW" else (self.n, self.h, self.w, self.c)

    @property
    def w_shape(self) -> tuple:
        cg = self.c // self.groups
        return (self.k, cg, self.r, self.s) if self.layout == "NCHW" else (self.k, self.r, self.s, cg)

    @property
    def y_shape(self) -> tuple:
        return (self.n, self.k, self.p, self.q) if self.layout == "NCHW" else (self.n, self.p, self.q, self.k)

    def conv_args(self) -> dict:
        """stride/padding/dilation/groups as the conv functions take them."""
        return {"stride": (self.stride_h, self.stride_w), "padding": (self.pad_h, self.pad_w),
                "dilation": (self.dil_h, self.dil_w), "groups": self.groups}

    @property
    def itemsize(self) -> int:
        return itemsize(self.dtype)

    # FLOP and byte model -------------------------------------------------------------------------

    def flops(self) -> int:
        return 2 * self.n * self.k * (self.c // self.groups) * self.r * self.s * self.p * self.q

    def bytes_min(self) -> int:
        sizes = {"x": int(np.prod(self.x_shape)), "w": int(np.prod(self.w_shape)), "y": int(np.prod(self.y_shape))}
        return self.itemsize * sum(sizes.values())

    def arithmetic_intensity(self) -> float:
        return self.flops() / self.bytes_min()

    def key(self) -> str:
        text = (f"conv {self.direction} N{self.n} C{self.c} {self.h}x{self.w} K{self.k} {self.r}x{self.s}"
                f" pad{self.pad_h},{self.pad_w} str{self.stride_h},{self.stride_w}")
        if (self.dil_h, self.dil_w) != (1, 1):
            text += f" dil{self.dil_h},{self.dil_w}"
        if self.groups != 1:
            text += f" g{self.groups}"
        if self.layout != "NCHW":
            text += f" {self.layout}"
        return text if self.dtype == "float32" else f"{text} {self.dtype}"

    def params(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_params(cls, params: dict) -> "ConvProblem":
        return from_params(cls, params)

    def scaled_to(self, max_flops: float) -> "ConvProblem":
        """Within a FLOP budget by halving the batch, the layer's natural scaling axis (every
        image is the same work); a single image above the budget is kept as it is (none of
        DeepBench's is)."""
        n = self.n
        while n > 1 and self.flops() // self.n * n > max_flops:
            n //= 2
        return dataclasses.replace(self, n=n)

    # Inputs and the reference --------------------------------------------------------------------

    @property
    def error_metric(self) -> str:
        return "max|out - ref| / rms(ref), float64 im2col reference on sampled images/channels"

    def make_inputs(self, seed: int = 0) -> dict:
        """The two operands of the direction in the problem's layout, uniform in [-1, 1) and
        rounded to the dtype (see problems._common.storage)."""
        rng = np.random.default_rng(seed)
        shapes = {"fwd": ("x", "w"), "bwd_data": ("dy", "w"), "bwd_filter": ("x", "dy")}[self.direction]
        full = {"x": self.x_shape, "w": self.w_shape, "dy": self.y_shape}
        return {name: storage(rng.uniform(-1.0, 1.0, full[name]), self.dtype) for name in shapes}

    def output_shape(self) -> tuple:
        return {"fwd": self.y_shape, "bwd_data": self.x_shape, "bwd_filter": self.w_shape}[self.direction]

    def reduction_length(self) -> int:
        """How many products each output element sums."""
        if self.direction == "fwd":
            return (self.c // self.groups) * self.r * self.s
        if self.direction == "bwd_data":
            return (self.k // self.groups) * self.r * self.s
        return self.n * self.p * self.q

    def tolerance(self) -> float:
        """float32 rounding grows like sqrt(terms summed) relative to the result's scale; 16-bit
        results add their one final rounding."""
        return 1e-5 + 5e-6 * float(np.sqrt(self.reduction_length())) + output_rounding(self.dtype)

    def check_error(self, inputs: dict, out: np.ndarray, max_images: int = 2, max_channels: int = 16,
                    seed: int = 1) -> float:
        """Error against a float64 reference computed on a sample: a few images (fwd, bwd_data)
        and, without groups, a few output channels (fwd, bwd_filter), so the check stays cheap
        at any size while every reduction term is still covered."""
        if np.shape(out) != self.output_shape():
            return float("inf")
        if self.layout == "NHWC":  # the reference works in NCHW: compare transposed views
            inputs = {name: np.moveaxis(value, -1, 1) for name, value in inputs.items()}
            out = np.moveaxis(out, -1, 1)
        args = self.conv_args()
        channels = sample(self.k, max_channels, seed) if self.groups == 1 else np.arange(self.k)
        images = sample(self.n, max_images, seed)

        def f64(array):     # only the sampled part is converted
            return array.astype(np.float64)

        if self.direction == "fwd":
            ref = numpy_ops.conv2d_forward(f64(inputs["x"][images]), f64(inputs["w"][channels]), **args)
            return relative_error(out[images][:, channels], ref)
        if self.direction == "bwd_data":
            ref = numpy_ops.conv2d_backward_data(f64(inputs["dy"][images]), f64(inputs["w"]),
                                                 (len(images), self.c, self.h, self.w), **args)
            return relative_error(out[images], ref)
        ref = numpy_ops.conv2d_backward_filter(f64(inputs["x"]), f64(inputs["dy"][:, channels]),
                                               (len(channels), self.c // self.groups, self.r, self.s), **args)
        return relative_error(out[channels], ref)
