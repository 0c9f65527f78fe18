"""The memory-bound layer problem: one forward or backward call of a ReLU, pooling, BatchNorm,
LRN, element-wise sum, concatenation, softmax, dropout or loss layer on a float32 tensor.

What a model's memory-bound layers cost is a framework call each, with its own efficiency, not
just bytes at the STREAM bandwidth: measuring them per kind and implementation is what lets the
predictor charge them their real time. A MemoryProblem is made from a model Layer
(`from_layer`) and turns back into one (`to_layer`), so its byte count is the layer's:

  bytes_min  Layer.memory_bytes of the pass ("fwd"; "bwd" = "bwd_data" + "bwd_weights", one
             backward call computing BN's gamma/beta gradients with the input gradient);
  flops      one operation per output element (forward: of the output; backward: of the input
             gradient, every operand's for eltwise), a stand-in so that GFLOP/s and arithmetic
             intensity are defined; the time model of these problems reads bytes, not FLOPs.
  extra_work the work beyond bytes that a kind's time follows too: pooling's window reads,
             a training dropout's mispredicted keep/drop branches (the predictor's memory time
             model fits a rate to it).

`training` matters for the forward of BN (batch statistics vs running ones) and dropout (the
identity at inference); it is always False for the other kinds' forward and always True for a
backward and for the loss (softmax cross-entropy, run in training only). Inputs: `x` (the list
of input tensors: eltwise's operands; concat is filled from one input of the output's size, as
the validation runners do), `dy` (the output gradient), BN's `gamma`/`beta` and the loss's
integer `labels`. The result checked is the forward output (the loss: one per row of logits) or
the first input's gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._common import check_choice, check_dims, check_flag, from_params, relative_error

# Element-wise activations of the "activation" kind (models.layers.ACTIVATIONS is this tuple).
ACTIVATIONS = ("sigmoid", "silu", "elu", "mish", "softplus", "hardswish", "hardsigmoid", "leaky_relu")
# The torch.nn module class of each: the layer runners build it, the torch importer maps it back.
TORCH_ACTIVATION_MODULES = {"sigmoid": "Sigmoid", "silu": "SiLU", "elu": "ELU", "mish": "Mish", "softplus": "Softplus",
                            "hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid", "leaky_relu": "LeakyReLU"}
MEMORY_KINDS = ("relu", "activation", "pool", "bn", "lrn", "eltwise", "concat", "softmax", "dropout", "loss")
DIRECTIONS = ("fwd", "bwd")
POOL_MODES = ("max", "avg")
# The layers' parameters (Caffe's LRN defaults, dropout 0.5 unless the layer says, BN epsilon); layer_runners runs the
# layers with these same values.
LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}
DROPOUT_P = 0.5
BN_EPS = 1e-5
# Kinds whose forward differs between training and inference.
TRAINING_KINDS = ("bn", "dropout")
# Samples of the batch the reference checks (BN's statistics span the whole batch: all of it).
_CHECKED_SAMPLES = 2


def _dims_text(values) -> str:
    return "x".join(str(v) for v in values)


def _parse_dims(value, what: str) -> tuple:
    if isinstance(value, str):
        try:
            return tuple(int(v) for v in value.split("x"))
        except ValueError:
            raise ValueError(f"MemoryProblem.{what} must be dimensions like '8x64x56x56', got {value!r}") from None
    if isinstance(value, (tuple, list)):
        return tuple(value)
    raise TypeError(f"MemoryProblem.{what} must be a tuple of ints, got {type(value).__name__}")


@dataclass(frozen=True)
class MemoryProblem:
    """kind on an input tensor of shape `tensor` (batch first; pool: N x C x H x W); pool's
    window/stride/pad are (height, width) pairs and `mode` max|avg; eltwise sums `operands`
    tensors of that shape."""

    kind: str
    direction: str
    tensor: tuple
    training: bool = False
    window: tuple = (1, 1)
    stride: tuple = (1, 1)
    pad: tuple = (0, 0)
    mode: str = "max"
    operands: int = 2
    rate: float = DROPOUT_P
    inplace: bool = False          # relu's forward overwriting its input
    function: str = "silu"         # activation: models.layers.ACTIVATIONS
    dtype: str = "float32"

    op = "memory"
    error_metric = "max|out - ref| / rms(ref), float64 reference on the first samples (BN: all)"

    def __post_init__(self):
        check_choice(self, "kind", MEMORY_KINDS)
        check_choice(self, "direction", DIRECTIONS)
        check_choice(self, "mode", POOL_MODES)
        check_choice(self, "function", ACTIVATIONS)
        if self.dtype != "float32":
            raise ValueError(f"MemoryProblem.dtype must be float32, got {self.dtype!r}")
        check_flag(self, "training")
        for name in ("tensor", "window", "stride", "pad"):
            values = _parse_dims(getattr(self, name), name)
            if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in values):
                raise TypeError(f"MemoryProblem.{name} must hold ints, got {values!r}")
            object.__setattr__(self, name, tuple(int(v) for v in values))
        if not 2 <= len(self.tensor) <= 5 or min(self.tensor) < 1:
            raise ValueError(f"MemoryProblem.tensor must be 2 to 5 dimensions >= 1 (batch first), got {self.tensor}")
        if self.kind in ("pool", "lrn", "bn") and len(self.tensor) != 4:
            raise ValueError(f"MemoryProblem: {self.kind} takes an N x C x H x W tensor, got {self.tensor}")
        for name, minimum in (("window", 1), ("stride", 1), ("pad", 0)):
            values = getattr(self, name)
            if len(values) != 2 or min(values) < minimum:
                raise ValueError(f"MemoryProblem.{name} must be a (height, width) pair >= {minimum}, got {values}")
        check_dims(self, ("operands",), minimum=2)
        # Fields a kind does not read are held at their defaults, so equal problems compare equal.
        if self.kind != "pool":
            for name, default in (("window", (1, 1)), ("stride", (1, 1)), ("pad", (0, 0)), ("mode", "max")):
                object.__setattr__(self, name, default)
        if self.kind != "eltwise":
            object.__setattr__(self, "operands", 2)
        if self.kind != "activation":
            object.__setattr__(self, "function", "silu")
        if isinstance(self.rate, str):   # from the CLI
            object.__setattr__(self, "rate", float(self.rate))
        if isinstance(self.rate, (bool, np.bool_)) or not isinstance(self.rate, (int, float, np.floating)) \
                or not 0.0 <= self.rate < 1.0:
            raise ValueError(f"MemoryProblem.rate must be a number in [0, 1), got {self.rate!r}")
        object.__setattr__(self, "rate", float(self.rate) if self.kind == "dropout" else DROPOUT_P)
        check_flag(self, "inplace")
        # only relu's forward has an in-place form that differs (its backward is the same call)
        object.__setattr__(self, "inplace", bool(self.inplace and self.kind == "relu" and self.direction == "fwd"))
        object.__setattr__(self, "training", bool(self.direction == "bwd" or self.kind == "loss" or
                                                  (self.training and self.kind in TRAINING_KINDS)))
        self.to_layer()   # the layer's own checks (a pooling window that fits, ...)

    # The layer it stands for ------------------------------------------------------------------

    @classmethod
    def from_layer(cls, layer, batch: int, pass_: str, training: bool = True) -> "MemoryProblem":
        """The problem of one occurrence of a memory-bound `layer` at `batch` in the predictor's
        pass: "fwd" (training: the forward of a training step), "bwd_data" -> "bwd"."""
        if pass_ not in ("fwd", "bwd_data"):
            raise ValueError(f"pass_ must be fwd or bwd_data (bwd_weights is part of the bwd call), got {pass_!r}")
        if layer.kind not in MEMORY_KINDS:
            raise ValueError(f"layer {layer.name!r}: kind {layer.kind!r} has no MemoryProblem; "
                             f"kinds: {', '.join(MEMORY_KINDS)}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an int >= 1, got {batch!r}")
        direction = "fwd" if pass_ == "fwd" else "bwd"
        if layer.kind == "pool":
            d = layer.dims
            return cls("pool", direction, (batch, d["c"], d["h"], d["w"]), training, d["window"], d["stride"],
                       d["pad"], layer.mode)
        return cls(layer.kind, direction, (batch, *layer.shape), training, operands=layer.operands, rate=layer.rate,
                   inplace=layer.inplace, function=layer.function)

    def to_layer(self):
        """(Layer, batch): the model layer this problem is one occurrence of."""
        from ..models.layers import Layer

        batch, sample = self.tensor[0], self.tensor[1:]
        if self.kind == "pool":
            shape = (*sample, self.window, self.stride, self.pad)
            return Layer("memory", "pool", shape, mode=self.mode), batch
        return Layer("memory", self.kind, sample, operands=self.operands, rate=self.rate, inplace=self.inplace,
                     function=self.function), batch

    @property
    def passes(self) -> tuple[str, ...]:
        return ("fwd",) if self.direction == "fwd" else ("bwd_data", "bwd_weights")

    @property
    def input_shapes(self) -> list[tuple]:
        return [self.tensor] * (self.operands if self.kind == "eltwise" else 1)

    @property
    def output_shape(self) -> tuple:
        layer, batch = self.to_layer()
        return (batch, *layer.output_tensor())

    @property
    def itemsize(self) -> int:
        return 4

    def flops(self) -> int:
        if self.direction == "fwd":
            return math.prod(self.output_shape)
        return sum(math.prod(shape) for shape in self.input_shapes)

    def bytes_min(self) -> int:
        layer, batch = self.to_layer()
        return sum(layer.memory_bytes(batch, pass_, self.itemsize) for pass_ in self.passes)

    def arithmetic_intensity(self) -> float:
        return self.flops() / self.bytes_min()

    def extra_work(self) -> tuple[str, int] | None:
        """(name, count) of the work a call does beyond moving its bytes, where the kind has
        any: pooling's window reads (output elements x window area: 9 reads an output at 3x3/1,
        2.25 an input element at 3x3/2) and a training dropout forward's mispredicted branches
        (elements x min(rate, 1 - rate): PyTorch's CPU dropout draws a keep/drop per element and
        costs most at rate 0.5, 1.9x what it costs at 0.1 on one tensor). None: bytes alone."""
        if self.kind == "pool":
            return "window reads", math.prod(self.output_shape) * self.window[0] * self.window[1]
        if self.kind == "dropout" and self.direction == "fwd" and self.training:
            return "dropout branch misses", round(math.prod(self.tensor) * min(self.rate, 1.0 - self.rate))
        return None

    def key(self) -> str:
        text = f"memory {self.kind} {self.direction} {_dims_text(self.tensor)}"
        if self.kind == "pool":
            text += (f" {self.mode} {_dims_text(self.window)}/{_dims_text(self.stride)}"
                     f" pad {_dims_text(self.pad)}")
        if self.kind == "eltwise" and self.operands != 2:
            text += f" x{self.operands}"
        if self.kind == "activation":
            text += f" {self.function}"
        if self.direction == "fwd" and self.kind in TRAINING_KINDS:
            text += " train" if self.training else " infer"
        if self.kind == "dropout" and self.rate != DROPOUT_P:
            text += f" rate {self.rate:g}"
        if self.inplace:
            text += " inplace"
        return text

    def params(self) -> dict:
        """Scalars and 'AxB' strings only: records are looked up by their params as dict keys."""
        return {"kind": self.kind, "direction": self.direction, "tensor": _dims_text(self.tensor),
                "training": self.training, "window": _dims_text(self.window), "stride": _dims_text(self.stride),
                "pad": _dims_text(self.pad), "mode": self.mode, "operands": self.operands, "rate": self.rate,
                **({"inplace": True} if self.inplace else {}),
                **({"function": self.function} if self.kind == "activation" else {}), "dtype": self.dtype}

    @classmethod
    def from_params(cls, params: dict) -> "MemoryProblem":
        return from_params(cls, params)

    # Inputs and the reference -------------------------------------------------------------

    def make_inputs(self, seed: int = 0) -> dict:
        rng = np.random.default_rng(seed)
        inputs = {"x": [rng.uniform(-1.0, 1.0, shape).astype(np.float32) for shape in self.input_shapes],
                  "dy": rng.uniform(-1.0, 1.0, self.output_shape).astype(np.float32)}
        if self.kind == "bn":
            channels = self.tensor[1]
            inputs["gamma"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
            inputs["beta"] = rng.uniform(-0.5, 0.5, channels).astype(np.float32)
        if self.kind == "loss":
            inputs["labels"] = rng.integers(0, self.tensor[-1], self.tensor[:-1])
        return inputs

    def tolerance(self) -> float:
        """float32 rounding of a few operations per element; BN's and softmax's reductions
        and LRN's power add a little."""
        return 1e-4 if self.kind in ("bn", "lrn", "softmax", "loss", "activation") else 1e-5

    def check_error(self, inputs: dict, out: np.ndarray) -> float:
        """max |out - ref| / rms(ref) on the first samples (BN: the whole batch), the reference in
        float64. Dropout's mask is the implementation's own: each element must be 0 or the
        input (output gradient) scaled by 1 / keep."""
        if out is None or np.shape(out) != (self.output_shape if self.direction == "fwd" else self.tensor):
            return float("inf")
        samples = self.tensor[0] if self.kind == "bn" else min(self.tensor[0], _CHECKED_SAMPLES)
        xs = [np.asarray(x[:samples], dtype=np.float64) for x in inputs["x"]]
        dy = np.asarray(inputs["dy"][:samples], dtype=np.float64)
        out = np.asarray(out[:samples], dtype=np.float64)
        if self.kind == "dropout" and (self.training or self.direction == "bwd"):
            scaled = (dy if self.direction == "bwd" else xs[0]) / (1.0 - self.rate)
            deviation = np.minimum(np.abs(out), np.abs(out - scaled))
            scale = float(np.sqrt(np.mean(scaled * scaled))) or 1.0
            return float(deviation.max(initial=0.0)) / scale if np.all(np.isfinite(deviation)) else float("inf")
        labels = inputs["labels"][:samples] if self.kind == "loss" else None
        ref = self.reference(xs, dy, inputs.get("gamma"), inputs.get("beta"), labels)
        return relative_error(out, ref)

    def reference(self, xs: list, dy: np.ndarray, gamma=None, beta=None, labels=None) -> np.ndarray:
        """float64 forward output, or the first input's gradient, of this problem on xs / dy
        (the loss: against `labels`)."""
        x = xs[0]
        fwd = self.direction == "fwd"
        if self.kind == "loss":
            shifted = x - x.max(axis=-1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
            picked = np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
            if fwd:
                return -picked
            grad = np.exp(log_p)
            np.put_along_axis(grad, labels[..., None], np.take_along_axis(grad, labels[..., None], axis=-1) - 1,
                              axis=-1)
            return grad * dy[..., None]
        if self.kind == "relu":
            return np.maximum(x, 0) if fwd else dy * (x > 0)
        if self.kind == "activation":
            value, slope = activation_reference(self.function, x)
            return value if fwd else dy * slope
        if self.kind == "eltwise":
            return sum(xs[1:], x) if fwd else dy
        if self.kind == "concat":
            return x if fwd else dy
        if self.kind == "dropout":        # inference: the identity
            return x
        if self.kind == "softmax":
            y = np.exp(x - x.max(axis=-1, keepdims=True))
            y /= y.sum(axis=-1, keepdims=True)
            return y if fwd else y * (dy - np.sum(dy * y, axis=-1, keepdims=True))
        if self.kind == "bn":
            return _bn_reference(x, dy, gamma.astype(np.float64), beta.astype(np.float64), fwd, self.training)
        if self.kind == "lrn":
            return _lrn_reference(x, dy, fwd)
        return _pool_reference(self, x, dy, fwd)


# PyTorch's defaults for the parametrized ones (ELU alpha 1, leaky ReLU slope 0.01, softplus
# beta 1 with its linear region above 20); the runners use the same.
ELU_ALPHA, LEAKY_SLOPE, SOFTPLUS_THRESHOLD = 1.0, 0.01, 20.0


def activation_reference(function: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f(x), f'(x)) of an element-wise activation, in x's precision."""
    sigmoid = 1.0 / (1.0 + np.exp(-x))
    if function == "sigmoid":
        return sigmoid, sigmoid * (1.0 - sigmoid)
    if function == "silu":
        return x * sigmoid, sigmoid * (1.0 + x * (1.0 - sigmoid))
    if function == "elu":
        negative = ELU_ALPHA * np.expm1(np.minimum(x, 0.0))
        return np.where(x > 0, x, negative), np.where(x > 0, 1.0, negative + ELU_ALPHA)
    softplus = np.where(x > SOFTPLUS_THRESHOLD, x, np.log1p(np.exp(np.minimum(x, SOFTPLUS_THRESHOLD))))
    if function == "softplus":
        return softplus, np.where(x > SOFTPLUS_THRESHOLD, 1.0, sigmoid)
    if function == "mish":
        t = np.tanh(softplus)
        return x * t, t + x * sigmoid * (1.0 - t * t)
    if function == "hardswish":
        gate = np.clip(x + 3.0, 0.0, 6.0) / 6.0
        return x * gate, np.where(x < -3.0, 0.0, np.where(x > 3.0, 1.0, (2.0 * x + 3.0) / 6.0))
    if function == "hardsigmoid":
        inside = (x > -3.0) & (x < 3.0)
        return np.clip(x / 6.0 + 0.5, 0.0, 1.0), np.where(inside, 1.0 / 6.0, 0.0)
    if function == "leaky_relu":
        return np.where(x > 0, x, LEAKY_SLOPE * x), np.where(x > 0, 1.0, LEAKY_SLOPE)
    raise ValueError(f"unknown activation function {function!r}")


def _bn_reference(x, dy, gamma, beta, fwd: bool, training: bool) -> np.ndarray:
    axes, shape = (0, 2, 3), (1, -1, 1, 1)
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    else:   # the running statistics of a fresh layer: mean 0, variance 1
        mean, var = np.zeros(x.shape[1]), np.ones(x.shape[1])
    inv = 1.0 / np.sqrt(var + BN_EPS)
    xhat = (x - mean.reshape(shape)) * inv.reshape(shape)
    if fwd:
        return xhat * gamma.reshape(shape) + beta.reshape(shape)
    count = x.size // x.shape[1]
    sum_dy = dy.sum(axis=axes).reshape(shape)
    sum_dy_xhat = (dy * xhat).sum(axis=axes).reshape(shape)
    return (gamma * inv).reshape(shape) / count * (count * dy - sum_dy - xhat * sum_dy_xhat)


def _lrn_window(values: np.ndarray, reverse: bool = False) -> np.ndarray:
    """Sum over each channel's window (size // 2 channels before, (size - 1) // 2 after, zero
    beyond the edges); reverse: the transposed window (the channels whose window holds it)."""
    size, channels = LRN["size"], values.shape[1]
    before, after = size // 2, (size - 1) // 2
    if reverse:
        before, after = after, before
    out = np.zeros_like(values)
    for c in range(channels):
        out[:, c] = values[:, max(0, c - before):min(channels, c + after + 1)].sum(axis=1)
    return out


def _lrn_reference(x, dy, fwd: bool) -> np.ndarray:
    size, alpha, beta, k = LRN["size"], LRN["alpha"], LRN["beta"], LRN["k"]
    scale = k + alpha / size * _lrn_window(x * x)
    if fwd:
        return x * scale**-beta
    # y_j = x_j s_j^-beta, s_j = k + alpha/size sum_{i in W(j)} x_i^2
    through_scale = _lrn_window(dy * x * scale ** (-beta - 1), reverse=True)
    return dy * scale**-beta - 2.0 * alpha * beta / size * x * through_scale


def _pool_reference(problem: MemoryProblem, x, dy, fwd: bool) -> np.ndarray:
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = problem.window, problem.stride, problem.pad
    out_h, out_w = problem.output_shape[2:]
    rows, cols = (out_h - 1) * sh + kh, (out_w - 1) * sw + kw
    fill = -np.inf if problem.mode == "max" else 0.0
    padded = np.full((n, c, max(rows, h + ph), max(cols, w + pw)), fill)
    padded[:, :, ph:ph + h, pw:pw + w] = x
    out = np.empty((n, c, out_h, out_w))
    grad = np.zeros_like(padded)
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * sh, j * sw
            window = padded[:, :, r0:r0 + kh, c0:c0 + kw]
            if problem.mode == "max":
                flat = window.reshape(n, c, -1)
                first = flat.argmax(axis=2)          # the first maximum takes the gradient
                out[:, :, i, j] = np.take_along_axis(flat, first[..., None], axis=2)[..., 0]
                if not fwd:
                    target = grad[:, :, r0:r0 + kh, c0:c0 + kw].reshape(n, c, -1).copy()
                    np.put_along_axis(target, first[..., None],
                                      np.take_along_axis(target, first[..., None], axis=2) + dy[:, :, i, j][..., None],
                                      axis=2)
                    grad[:, :, r0:r0 + kh, c0:c0 + kw] = target.reshape(n, c, kh, kw)
            else:
                # the divisor: the window clipped to the padded input (padding counts)
                count = (min(r0 + kh, h + 2 * ph) - r0) * (min(c0 + kw, w + 2 * pw) - c0)
                out[:, :, i, j] = window.sum(axis=(2, 3)) / count
                if not fwd:
                    grad[:, :, r0:r0 + kh, c0:c0 + kw] += (dy[:, :, i, j] / count)[..., None, None]
    return out if fwd else grad[:, :, ph:ph + h, pw:pw + w]
