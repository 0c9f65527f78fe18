"""Layers and models: a small declarative description of a network, not a framework.

A `Layer` is one layer shape and how many times it occurs in the model (`count`): what the
predictor needs is the work of each distinct shape, not the graph's wiring. Kernel layers
("conv", "fc", "rnn", "matmul") carry MACs and lower to kernel problems (GEMM, convolution,
RNN); memory-bound layers (ReLU, pooling, BN, ...) carry no MACs and are costed by the bytes
they must move.

Shapes are per sample. Each kind names its shape fields (`SHAPE_FIELDS`); the kinds in
`TENSOR_KINDS` take the per-sample tensor they act on as their shape, e.g. (C, H, W) or
(tokens, features). `OPTIONS` names the extra fields a kind reads.

Parameter conventions (../shared/CONTEXT.md):
  cookbook   every Caffe blob: weights, biases, BatchNorm running mean and variance plus its one
             moving-average scalar, Scale gamma/beta;
  trainable  weights, biases, BN (Scale) gamma/beta, LayerNorm gamma/beta, embedding tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..numpy_ops import GATES
from ..problems import ConvProblem, GemmProblem, RnnProblem
from ..problems.memory import ACTIVATIONS

KERNEL_KINDS = ("conv", "fc", "rnn", "matmul")
TENSOR_KINDS = ("bn", "relu", "gelu", "tanh", "activation", "lrn", "eltwise", "concat", "softmax", "dropout", "layernorm",
                "loss")
# The kind "activation" is one of ACTIVATIONS (option `function`: SiLU, sigmoid, ...), each
# measured as itself: on torch 2.13's CPU kernels (8x96x56x56 float32, ms forward / backward)
# sigmoid 0.62 / 0.42, silu 0.53 / 0.68, elu 1.64 / 0.71, mish 4.63 / 5.39, hardswish
# 0.17 / 0.41, against relu 0.18 / 0.34 and tanh 3.12 / 0.44: no other kind stands in.
# Kinds a framework runs in training only: dropout is the identity at inference, and the loss
# (softmax cross-entropy over the last dimension against integer labels) is not computed there.
TRAINING_ONLY_KINDS = ("dropout", "loss")
SHAPE_FIELDS = {
    "conv": ("c", "h", "w", "k", "r", "s", "pad", "stride", "groups"),
    "fc": ("inputs", "outputs"),
    "rnn": ("input_size", "hidden", "timesteps"),
    "matmul": ("m", "n", "k"),
    "pool": ("c", "h", "w", "window", "stride", "pad"),
    "embedding": ("vocab", "dim", "tokens"),
    **{kind: ("tensor",) for kind in TENSOR_KINDS},
}
KINDS = tuple(SHAPE_FIELDS)
# Shape fields holding a (height, width) pair; pads may be 0, every other dimension is >= 1.
PAIR_FIELDS = ("pad", "stride", "window")
OPTIONS = {"conv": ("bias",), "fc": ("bias", "tokens"), "rnn": ("cell", "bias"), "matmul": ("heads", "trans_b"),
           "pool": ("mode",), "eltwise": ("operands",), "dropout": ("rate",), "relu": ("inplace",),
           "activation": ("function",)}
CONVENTIONS = ("cookbook", "trainable")
PASSES = ("fwd", "bwd_data", "bwd_weights")
MODEL_INPUT = "input"       # what a layer's `reads` names for the model's own input
POOL_MODES = ("max", "avg")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_int(value, what: str, minimum: int) -> int:
    if not _is_int(value):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return int(value)


def _pair(value, what: str, minimum: int) -> tuple[int, int]:
    if _is_int(value):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{what} must be an int or a (height, width) pair, got {value!r}")
    return tuple(_check_int(v, what, minimum) for v in value)


def _pool_output_size(size: int, window: int, stride: int, pad: int) -> int:
    """Caffe's pooling rounds up, then drops a last window that would start in the padding."""
    out = -(-(size + 2 * pad - window) // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    shape: tuple
    count: int = 1
    bias: bool = True           # conv, fc, rnn
    tokens: int = 1             # fc: GEMM rows per sample (sequence positions; 1 for a classifier)
    cell: str = "lstm"          # rnn: vanilla | lstm | gru
    heads: int = 1              # matmul: independent GEMMs per sample
    trans_b: bool = False       # matmul: C = A B^T (attention scores Q K^T)
    mode: str = "max"           # pool: max | avg
    operands: int = 2           # eltwise: tensors summed
    rate: float = 0.5           # dropout: the share of elements dropped in training
    inplace: bool = False       # relu: overwrites its input (no fresh output tensor to allocate)
    function: str = "silu"      # activation: one of ACTIVATIONS
    reads: tuple = ()           # the graph's edges: names of the layers (or "input") it reads; () unknown

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a layer's name must be a non-empty string, got {self.name!r}")
        where = f"layer {self.name!r}"
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        object.__setattr__(self, "count", _check_int(self.count, f"{where}: count", 1))
        object.__setattr__(self, "shape", self._checked_shape(where))
        for flag in ("bias", "trans_b", "inplace"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise TypeError(f"{where}: {flag} must be a bool, got {getattr(self, flag)!r}")
        if not isinstance(self.reads, (tuple, list)) or not all(isinstance(i, str) and i for i in self.reads):
            raise TypeError(f"{where}: reads must be a tuple of layer names, got {self.reads!r}")
        object.__setattr__(self, "reads", tuple(self.reads))
        for field, minimum in (("tokens", 1), ("heads", 1), ("operands", 2)):
            object.__setattr__(self, field, _check_int(getattr(self, field), f"{where}: {field}", minimum))
        if isinstance(self.rate, (bool, np.bool_)) or not isinstance(self.rate, (int, float, np.floating)) \
                or not 0.0 <= self.rate < 1.0:
            raise ValueError(f"{where}: rate must be a number in [0, 1), got {self.rate!r}")
        object.__setattr__(self, "rate", float(self.rate))
        if self.cell not in GATES:
            raise ValueError(f"{where}: cell must be one of {', '.join(GATES)}; got {self.cell!r}")
        if self.mode not in POOL_MODES:
            raise ValueError(f"{where}: mode must be one of {', '.join(POOL_MODES)}; got {self.mode!r}")
        if self.function not in ACTIVATIONS:
            raise ValueError(f"{where}: function must be one of {', '.join(ACTIVATIONS)}; got {self.function!r}")
        if self.kind == "conv":
            dims = self.dims
            if dims["c"] % dims["groups"] or dims["k"] % dims["groups"]:
                raise ValueError(f"{where}: groups={dims['groups']} must divide c={dims['c']} and k={dims['k']}")
            try:
                self.problem(1)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        if self.kind == "pool":
            dims = self.dims
            if any(w > s + 2 * p for w, s, p in zip(dims["window"], (dims["h"], dims["w"]), dims["pad"])):
                raise ValueError(f"{where}: the {dims['window']} window does not fit the padded "
                                 f"{dims['h']}x{dims['w']} input")

    def _checked_shape(self, where: str) -> tuple:
        shape = self.shape
        if not isinstance(shape, (tuple, list)):
            raise TypeError(f"{where}: shape must be a tuple, got {type(shape).__name__}")
        if self.kind in TENSOR_KINDS:
            if not 1 <= len(shape) <= 4:
                raise ValueError(f"{where}: tensor must have 1 to 4 dimensions, got {list(shape)}")
            return tuple(_check_int(d, f"{where}: tensor dimension", 1) for d in shape)
        fields = SHAPE_FIELDS[self.kind]
        if len(shape) != len(fields):
            raise ValueError(f"{where}: a {self.kind} shape is ({', '.join(fields)}), got {tuple(shape)}")
        return tuple(_pair(value, f"{where}: {field}", 0 if field == "pad" else 1) if field in PAIR_FIELDS
                     else _check_int(value, f"{where}: {field}", 1) for field, value in zip(fields, shape))

    # Shapes ------------------------------------------------------------------------------------

    @property
    def dims(self) -> dict:
        """The shape by field name (tensor kinds: {"tensor": shape})."""
        if self.kind in TENSOR_KINDS:
            return {"tensor": self.shape}
        return dict(zip(SHAPE_FIELDS[self.kind], self.shape))

    @property
    def is_kernel(self) -> bool:
        return self.kind in KERNEL_KINDS

    @property
    def runs_at_inference(self) -> bool:
        return self.kind not in TRAINING_ONLY_KINDS

    def output_tensor(self) -> tuple:
        """The output of one sample."""
        d = self.dims
        if self.kind == "conv":
            problem = self.problem(1)
            return (d["k"], problem.p, problem.q)
        if self.kind == "fc":
            return (d["outputs"],) if self.tokens == 1 else (self.tokens, d["outputs"])
        if self.kind == "rnn":
            return (d["timesteps"], d["hidden"])
        if self.kind == "matmul":
            return (self.heads, d["m"], d["n"])
        if self.kind == "pool":
            return (d["c"],) + tuple(_pool_output_size(*args) for args in
                                     zip((d["h"], d["w"]), d["window"], d["stride"], d["pad"]))
        if self.kind == "embedding":
            return (d["tokens"], d["dim"])
        if self.kind == "loss":       # one loss per row of logits (the mean over them is free)
            return self.shape[:-1]
        return self.shape

    def input_elements(self, batch: int) -> int:
        """Elements the layer reads as its input(s) at this batch (eltwise: every operand;
        matmul: both operands; embedding: the token indices)."""
        d = self.dims
        per_sample = {
            "conv": lambda: d["c"] * d["h"] * d["w"],
            "fc": lambda: self.tokens * d["inputs"],
            "rnn": lambda: d["timesteps"] * d["input_size"],
            "matmul": lambda: self.heads * (d["m"] * d["k"] + d["k"] * d["n"]),
            "pool": lambda: d["c"] * d["h"] * d["w"],
            "embedding": lambda: d["tokens"],
            "eltwise": lambda: self.operands * math.prod(self.shape),
        }.get(self.kind, lambda: math.prod(self.shape))()
        return _check_int(batch, "batch", 1) * per_sample

    def output_elements(self, batch: int) -> int:
        return _check_int(batch, "batch", 1) * math.prod(self.output_tensor())

    # MACs and parameters -----------------------------------------------------------------------

    def macs_per_sample(self) -> int:
        """Forward multiply-accumulates of one occurrence for one sample; 0 for memory-bound layers."""
        d = self.dims
        if self.kind in ("conv", "fc"):
            return self.problem(1).flops() // 2
        if self.kind == "rnn":
            # every gate's input and recurrent products, as RnnProblem.flops_full counts them
            return GATES[self.cell] * d["timesteps"] * d["hidden"] * (d["input_size"] + d["hidden"])
        if self.kind == "matmul":
            return self.heads * d["m"] * d["n"] * d["k"]
        return 0

    def params(self, convention: str) -> int:
        """Parameters of one occurrence in the named convention (see the module docstring)."""
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}; got {convention!r}")
        d = self.dims
        if self.kind == "conv":
            return d["k"] * (d["c"] // d["groups"]) * d["r"] * d["s"] + (d["k"] if self.bias else 0)
        if self.kind == "fc":
            return d["inputs"] * d["outputs"] + (d["outputs"] if self.bias else 0)
        if self.kind == "rnn":
            gates_by_hidden = GATES[self.cell] * d["hidden"]
            # input and recurrent weights; cuDNN and PyTorch keep two bias vectors
            return gates_by_hidden * (d["input_size"] + d["hidden"]) + (2 * gates_by_hidden if self.bias else 0)
        if self.kind == "bn":
            channels = self.shape[0]
            scale = 2 * channels                     # the Scale layer's gamma and beta
            return scale if convention == "trainable" else scale + 2 * channels + 1
        if self.kind == "layernorm":
            return 2 * self.shape[-1]
        if self.kind == "embedding":
            return d["vocab"] * d["dim"]
        return 0

    @property
    def weight_elements(self) -> int:
        """What the optimizer updates and data parallelism all-reduces: the trainable parameters."""
        return self.params("trainable")

    # Kernel problems ---------------------------------------------------------------------------

    def problem(self, batch: int):
        """The forward kernel problem at this batch (matmul: the GEMM of one head of one sample)."""
        if not self.is_kernel:
            raise ValueError(f"layer {self.name!r} ({self.kind}) is memory-bound: it has no kernel problem")
        return self.kernel_problems(batch, "fwd")[0][0]

    def kernel_problems(self, batch: int, pass_: str) -> list[tuple]:
        """(problem, times it runs) for one occurrence of this layer in one pass; [] for
        memory-bound layers.

        fc: Y = X W^T with X (batch*tokens x inputs); backward data dX = dY W, backward weights
        dW = dY^T X. rnn: DeepBench's backward (backprop through time to the weight gradients)
        stands for "bwd_weights"; "bwd_data" is the input gradient that follows it, one GEMM over
        every step at once, dX (timesteps*batch x input_size) = dGates W_ih.
        matmul: one GEMM per head and sample; both operands are activations, so its backward is
        all "bwd_data" (dA = dC op(B)^T and the gradient of B) and "bwd_weights" is [].
        """
        batch = _check_int(batch, "batch", 1)
        if pass_ not in PASSES:
            raise ValueError(f"pass_ must be one of {', '.join(PASSES)}; got {pass_!r}")
        d = self.dims
        if self.kind == "conv":
            direction = {"fwd": "fwd", "bwd_data": "bwd_data", "bwd_weights": "bwd_filter"}[pass_]
            (pad_h, pad_w), (stride_h, stride_w) = d["pad"], d["stride"]
            return [(ConvProblem(n=batch, c=d["c"], h=d["h"], w=d["w"], k=d["k"], r=d["r"], s=d["s"],
                                 pad_h=pad_h, pad_w=pad_w, stride_h=stride_h, stride_w=stride_w,
                                 groups=d["groups"], direction=direction), 1)]
        if self.kind == "fc":
            rows, inputs, outputs = batch * self.tokens, d["inputs"], d["outputs"]
            gemm = {"fwd": GemmProblem(rows, outputs, inputs, trans_b=True),
                    "bwd_data": GemmProblem(rows, inputs, outputs),
                    "bwd_weights": GemmProblem(outputs, inputs, rows, trans_a=True)}[pass_]
            return [(gemm, 1)]
        if self.kind == "rnn":
            if pass_ == "bwd_data":
                gates = GATES[self.cell] * d["hidden"]
                return [(GemmProblem(d["timesteps"] * batch, d["input_size"], gates), 1)]
            input_size = 0 if d["input_size"] == d["hidden"] else d["input_size"]  # DeepBench's square case
            return [(RnnProblem(d["hidden"], batch, d["timesteps"], self.cell, input_size=input_size,
                                direction="fwd" if pass_ == "fwd" else "bwd"), 1)]
        if self.kind == "matmul":
            m, n, k, times = d["m"], d["n"], d["k"], batch * self.heads
            if pass_ == "fwd":
                return [(GemmProblem(m, n, k, trans_b=self.trans_b), times)]
            if pass_ == "bwd_weights":
                return []
            grad_a = GemmProblem(m, k, n, trans_b=not self.trans_b)      # dA = dC op(B)^T
            # B stored n x k (trans_b): dB = dC^T A; B stored k x n: dB = A^T dC
            grad_b = GemmProblem(n, k, m, trans_a=True) if self.trans_b else GemmProblem(k, n, m, trans_a=True)
            return [(grad_a, times), (grad_b, times)]
        return []

    # Memory-bound work -------------------------------------------------------------------------

    def memory_bytes(self, batch: int, pass_: str, itemsize: int = 4) -> int:
        """Minimum bytes one occurrence of a memory-bound layer moves in a pass (0 for kernel
        layers, whose traffic is their problems'; 0 for "bwd_weights" without weights).

        fwd reads the input(s) and writes the output; "bwd_data" reads the output gradient and
        what the derivative needs (the output for ReLU/tanh/softmax, the input for GELU/BN/
        LayerNorm and the other activations, both for LRN, the argmax for max pooling) and writes the input gradient;
        eltwise's backward is the sum of the gradients at the fork that fed its operands; an
        embedding's weight gradient is a dense table (zeroed, then the rows added).
        Dropout (training) writes and reads a one-byte mask; at inference frameworks skip it.
        The loss (training only) reads the logits and writes the log-probabilities it keeps;
        its backward reads those and writes the logits' gradient.
        """
        batch = _check_int(batch, "batch", 1)
        itemsize = _check_int(itemsize, "itemsize", 1)
        if pass_ not in PASSES:
            raise ValueError(f"pass_ must be one of {', '.join(PASSES)}; got {pass_!r}")
        if self.is_kernel:
            return 0
        inputs, outputs = self.input_elements(batch), self.output_elements(batch)
        weights = self.weight_elements
        if self.kind == "embedding":
            rows = outputs            # the looked-up rows, batch x tokens x dim
            # the weight gradient is dense, as frameworks make it by default: the whole table's
            # gradient zeroed, then a scatter-add (read grad_out, read and write the rows it touches)
            elements = {"fwd": 2 * rows, "bwd_data": 0, "bwd_weights": weights + 3 * rows}[pass_]
            return itemsize * elements
        if self.kind in ("bn", "layernorm"):
            # statistics and gamma/beta are read in fwd and bwd_data; bwd_weights reduces
            # grad_out x normalized input into gamma/beta's gradients
            statistics = 2 * self.shape[0] if self.kind == "bn" else 0
            elements = {"fwd": 2 * inputs + weights + statistics, "bwd_data": 3 * inputs + weights + statistics,
                        "bwd_weights": 2 * inputs + weights}[pass_]
            return itemsize * elements
        if pass_ == "bwd_weights":
            return 0
        if self.kind == "dropout":
            return itemsize * 2 * inputs + inputs     # plus the one-byte mask
        if self.kind == "loss":
            return itemsize * (2 * inputs + outputs)  # plus the per-row losses (fwd) or labels (bwd)
        if self.kind == "pool":
            argmax = outputs if self.mode == "max" and pass_ == "bwd_data" else 0
            return itemsize * (inputs + outputs + argmax)
        if self.kind in ("eltwise", "concat"):
            return itemsize * (inputs + outputs)
        backward_reads = 2 if self.kind == "lrn" else 1
        return itemsize * (inputs + outputs + (backward_reads * inputs if pass_ == "bwd_data" else 0))


@dataclass(frozen=True)
class Model:
    name: str
    layers: tuple[Layer, ...]
    input_shape: tuple       # one sample: (C, H, W), (features,), (tokens,)
    source: str = ""         # where the shapes come from

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a model's name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.layers, (tuple, list)) or not self.layers:
            raise ValueError(f"model {self.name!r}: layers must be a non-empty tuple of Layer")
        object.__setattr__(self, "layers", tuple(self.layers))
        seen = set()
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"model {self.name!r}: layers must be Layer objects, got {type(layer).__name__}")
            if layer.name in seen:
                raise ValueError(f"model {self.name!r}: two layers are named {layer.name!r}")
            seen.add(layer.name)
        names = {layer.name for layer in self.layers}
        for layer in self.layers:
            for source in layer.reads:
                if source != MODEL_INPUT and source not in names:
                    raise ValueError(f"model {self.name!r}: layer {layer.name!r} reads {source!r}, which is neither "
                                     f"a layer of the model nor {MODEL_INPUT!r}")
        if not isinstance(self.input_shape, (tuple, list)) or not self.input_shape:
            raise ValueError(f"model {self.name!r}: input_shape must be a non-empty tuple of ints")
        object.__setattr__(self, "input_shape", tuple(_check_int(d, f"model {self.name!r}: input_shape", 1)
                                                     for d in self.input_shape))
        if not isinstance(self.source, str):
            raise TypeError(f"model {self.name!r}: source must be a string")

    def params(self, convention: str) -> int:
        return sum(layer.params(convention) * layer.count for layer in self.layers)

    def macs_per_sample(self) -> int:
        """Forward MACs of one sample: every kernel layer (for the cookbook's models, that is its
        convolutions and fully-connected layers)."""
        return sum(layer.macs_per_sample() * layer.count for layer in self.layers)

    def kernel_layers(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.is_kernel)


def without_input_gradient(layers, batch: int) -> tuple[set[int], set[int]]:
    """(indices of `layers` that run no backward at all, indices that run no backward data) in
    a training step, since nothing needs the gradient of the model input: layers before the
    first layer with weights get no backward, and the first layer with weights computes no
    input gradient, nor do kernel layers listed right after it that read a tensor of the same
    size (the parallel branches over the model input: TextCNN's three convolutions). The
    predictor charges, and the validation runners execute, exactly this."""
    layers = list(layers)
    first = next((i for i, layer in enumerate(layers) if layer.weight_elements > 0), None)
    if first is None:
        return set(range(len(layers))), set()
    skip_data = {first}
    if layers[first].is_kernel:
        size = layers[first].input_elements(batch)
        i = first + 1
        while i < len(layers) and layers[i].is_kernel and layers[i].input_elements(batch) == size:
            skip_data.add(i)
            i += 1
    return set(range(first)), skip_data


def with_loss(model: Model) -> Model:
    """The model as a training step runs it: a softmax cross-entropy loss on its output (the
    last layer's), which inference skips. A final softmax layer is the loss's own softmax, so
    the loss takes its place (Caffe's SoftmaxWithLoss); a model already ending in a loss is
    returned unchanged."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be a Model, got {type(model).__name__}")
    last = model.layers[-1]
    if last.kind == "loss":
        return model
    head, logits = (model.layers[:-1], last.shape) if last.kind == "softmax" else (model.layers, last.output_tensor())
    names = {layer.name for layer in head}
    name = next(n for n in ("loss", *(f"loss_{i}" for i in range(1, len(names) + 2))) if n not in names)
    with_edges = any(layer.reads for layer in model.layers)
    reads = last.reads if last.kind == "softmax" else ((last.name,) if with_edges else ())
    return Model(model.name, (*head, Layer(name, "loss", tuple(logits), reads=reads)), model.input_shape,
                 (model.source + "; " if model.source else "") + "softmax cross-entropy loss added in training")


# Constructors ----------------------------------------------------------------------------------

def conv(name, c, h, w, k, r, s=None, pad=0, stride=1, groups=1, bias=True, count=1) -> Layer:
    """k filters of r x s (s defaults to r) over a c x h x w input; pad and stride are an int or
    a (height, width) pair."""
    return Layer(name, "conv", (c, h, w, k, r, r if s is None else s, pad, stride, groups), count, bias=bias)


def fc(name, inputs, outputs, bias=True, tokens=1, count=1) -> Layer:
    """inputs -> outputs, applied to `tokens` rows of each sample."""
    return Layer(name, "fc", (inputs, outputs), count, bias=bias, tokens=tokens)


def rnn(name, input_size, hidden, timesteps, cell="lstm", bias=True, count=1) -> Layer:
    """One unidirectional layer over `timesteps` steps (a bidirectional one is two: count=2)."""
    return Layer(name, "rnn", (input_size, hidden, timesteps), count, bias=bias, cell=cell)


def matmul(name, m, n, k, heads=1, trans_b=False, count=1) -> Layer:
    """`heads` GEMMs (m x k) @ (k x n) per sample between activations (no weights)."""
    return Layer(name, "matmul", (m, n, k), count, heads=heads, trans_b=trans_b)


def pool(name, c, h, w, window, stride=None, pad=0, mode="max", count=1) -> Layer:
    """Max or average pooling (Caffe's rounding up); stride defaults to the window."""
    return Layer(name, "pool", (c, h, w, window, window if stride is None else stride, pad), count, mode=mode)


def embedding(name, vocab, dim, tokens, count=1) -> Layer:
    """A vocab x dim table looked up at `tokens` positions per sample."""
    return Layer(name, "embedding", (vocab, dim, tokens), count)


def eltwise(name, tensor, operands=2, count=1) -> Layer:
    """The sum of `operands` tensors (a residual add)."""
    return Layer(name, "eltwise", tuple(tensor), count, operands=operands)


def _tensor_constructor(kind: str, what: str):
    def constructor(name, tensor, count=1) -> Layer:
        return Layer(name, kind, tuple(tensor), count)

    constructor.__name__ = constructor.__qualname__ = kind
    constructor.__doc__ = f"{what} over the per-sample tensor `tensor`."
    return constructor


bn = _tensor_constructor("bn", "BatchNorm with its Scale (gamma/beta), channels first")
relu = _tensor_constructor("relu", "ReLU (clipped ReLU alike)")
gelu = _tensor_constructor("gelu", "GELU")
tanh = _tensor_constructor("tanh", "tanh")


def activation(name, tensor, function, count=1) -> Layer:
    """An element-wise activation (one of ACTIVATIONS: SiLU, sigmoid, ...) over the per-sample
    tensor `tensor`."""
    return Layer(name, "activation", tuple(tensor), count, function=function)
lrn = _tensor_constructor("lrn", "Local response normalization across channels")
concat = _tensor_constructor("concat", "Concatenation into the output `tensor`")
softmax = _tensor_constructor("softmax", "Softmax")
dropout = _tensor_constructor("dropout", "Dropout")
layernorm = _tensor_constructor("layernorm", "LayerNorm over the last dimension")
loss = _tensor_constructor("loss", "Softmax cross-entropy over the last dimension (the logits), training only")
