"""Reference-model layers as runnable calls: the one place that turns a Layer
(dlcb_kernels.models) into something that executes, in two implementations.

- TorchLayer / TorchModel: PyTorch CPU modules built from the layer list (nn.Conv2d, nn.Linear,
  nn.RNN/LSTM/GRU, nn.BatchNorm2d, max/avg pooling with Caffe's rounding up,
  nn.LocalResponseNorm, ...).
- OursLayer / OursModel: the same layers on our kernels (conv2d and its two backward passes,
  gemm for fully-connected layers and attention products, rnn/rnn_backward) with numpy for
  the memory-bound layers and the optimizer update, every buffer allocated once.

The registry's memory-bound layer implementations (registry/memory_layers.py) and the
end-to-end validation runners (predict/validate.py) both use these, so a table record
measures exactly what runs in a model.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np

from .models.layers import without_input_gradient
from .problems.memory import BN_EPS, LRN, TORCH_ACTIVATION_MODULES, activation_reference

SGD_LR = 1e-4                   # small: repeated steps on fixed gradients must not blow up
SGD_MOMENTUM = 0.9
# Memory-bound kinds that act on one per-sample tensor (eltwise: on several of that shape).
MEMORY_KINDS = ("bn", "relu", "gelu", "tanh", "activation", "lrn", "eltwise", "concat", "softmax", "dropout", "layernorm",
                "loss")


# Layer geometry: the one place that reads a Layer's fields ------------------------------------

@dataclass
class LayerSpec:
    """One layer entry at a batch size, as both runners execute it: the tensors it reads, the
    one it writes, and its parameters."""

    name: str
    kind: str
    count: int
    inputs: list[tuple]          # full shapes, batch included
    output: tuple
    params: dict = field(default_factory=dict)
    backward: bool = True        # runs a backward pass in training
    input_grad: bool = True      # computes its input gradient (the model's input needs none)


def pool_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's pooling output size: rounded up, the last window starting inside the padded
    input (PyTorch's ceil_mode gives the same)."""
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def layer_spec(layer, batch: int) -> LayerSpec:
    """The tensors and parameters of one layer entry (see the models' Layer for the fields)."""
    kind = layer.kind
    spec = LayerSpec(layer.name, kind, int(layer.count), [], ())
    if kind == "conv":
        (problem, _), = layer.kernel_problems(batch, "fwd")
        spec.inputs, spec.output = [problem.x_shape], problem.y_shape
        spec.params = {"problem": problem, "bias": layer.bias}
    elif kind == "fc":
        (problem, _), = layer.kernel_problems(batch, "fwd")
        spec.inputs, spec.output = [(problem.m, problem.k)], (problem.m, problem.n)
        spec.params = {"bias": layer.bias}
    elif kind == "rnn":
        (problem, _), = layer.kernel_problems(batch, "fwd")
        spec.inputs = [(problem.timesteps, problem.batch, problem.inputs_per_step)]
        spec.output = (problem.timesteps, problem.batch, problem.hidden)
        spec.params = {"problem": problem}
    elif kind == "matmul":
        (problem, times), = layer.kernel_problems(batch, "fwd")
        a = (times, problem.k, problem.m) if problem.trans_a else (times, problem.m, problem.k)
        b = (times, problem.n, problem.k) if problem.trans_b else (times, problem.k, problem.n)
        spec.inputs, spec.output = [a, b], (times, problem.m, problem.n)
        spec.params = {"problem": problem}
    else:
        _memory_layer_spec(layer, batch, spec)
        if math.prod(spec.output) != layer.output_elements(batch):
            raise ValueError(f"layer {layer.name!r}: the runners' output {spec.output} disagrees with the layer's "
                             f"{layer.output_elements(batch)} output elements")
    return spec


def _memory_layer_spec(layer, batch: int, spec: LayerSpec) -> None:
    """Memory-bound layers. pool: (c, h, w, window, stride, pad) and its mode; embedding:
    (vocab, dim, tokens); loss: the logits in, one loss per row out; eltwise: `operands` tensors
    of the per-sample `tensor`; concat: the output tensor, filled from one input of its size (the
    branches' split is not described); the other kinds act on their per-sample tensor."""
    kind, d = layer.kind, layer.dims
    if kind == "pool":
        (kh, kw), (sh, sw), (ph, pw) = d["window"], d["stride"], d["pad"]
        p, q = pool_output_size(d["h"], kh, sh, ph), pool_output_size(d["w"], kw, sw, pw)
        spec.inputs, spec.output = [(batch, d["c"], d["h"], d["w"])], (batch, d["c"], p, q)
        spec.params = {"mode": layer.mode, "kernel": (kh, kw), "stride": (sh, sw), "pad": (ph, pw)}
    elif kind == "embedding":
        spec.inputs, spec.output = [(batch, d["tokens"])], (batch, d["tokens"], d["dim"])
        spec.params = {"vocabulary": d["vocab"]}
    elif kind == "loss":   # logits in, one loss per row out, against fixed random labels (both runners')
        spec.inputs, spec.output = [(batch, *d["tensor"])], (batch, *d["tensor"][:-1])
        spec.params = {"labels": np.random.default_rng(0).integers(0, d["tensor"][-1], spec.output)}
    elif kind in MEMORY_KINDS:
        tensor = (batch, *d["tensor"])
        spec.inputs = [tensor] * (layer.operands if kind == "eltwise" else 1)
        spec.output = tensor
        if kind == "lrn":   # Caffe's defaults (AlexNet and GoogLeNet use them)
            spec.params = dict(LRN)
        if kind == "dropout":
            spec.params = {"p": layer.rate}
        if kind == "relu":
            spec.params = {"inplace": layer.inplace}
        if kind == "activation":
            spec.params = {"function": layer.function}
    else:
        raise ValueError(f"layer {layer.name!r} has kind {kind!r}, which the validation runners do not execute")


def model_specs(model, batch: int) -> list[LayerSpec]:
    """Every layer entry of the model, with the predictor's rule for the model input's gradient
    (models.layers.without_input_gradient)."""
    if not isinstance(batch, int) or isinstance(batch, bool):
        raise TypeError(f"batch must be an int, got {type(batch).__name__}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    specs = [layer_spec(layer, batch) for layer in model.layers]
    no_backward, no_data = without_input_gradient(model.layers, batch)
    for i, spec in enumerate(specs):
        spec.backward = i not in no_backward
        spec.input_grad = i not in no_data
    return specs



# PyTorch runner --------------------------------------------------------------------------------

def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def torch_threads(threads: int):
    """torch on `threads` intra-op threads for the block (yields the module), its own count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield torch
    finally:
        torch.set_num_threads(before)


class TorchLayer:
    """One occurrence of a layer as a torch callable on its inputs."""

    def __init__(self, spec: LayerSpec, torch):
        self.spec = spec
        nn = torch.nn
        kind, p = spec.kind, spec.params
        self.module = None
        if kind == "conv":
            cp = p["problem"]
            self.module = nn.Conv2d(cp.c, cp.k, (cp.r, cp.s), stride=(cp.stride_h, cp.stride_w),
                                    padding=(cp.pad_h, cp.pad_w), dilation=(cp.dil_h, cp.dil_w),
                                    groups=cp.groups, bias=p["bias"])
        elif kind == "fc":
            self.module = nn.Linear(spec.inputs[0][1], spec.output[1], bias=p["bias"])
        elif kind == "rnn":
            rp = p["problem"]
            extra = {"nonlinearity": "relu"} if rp.cell == "vanilla" else {}
            self.module = getattr(nn, {"vanilla": "RNN", "lstm": "LSTM", "gru": "GRU"}[rp.cell])(
                rp.inputs_per_step, rp.hidden, **extra)
        elif kind == "bn":
            channels = spec.inputs[0][1]
            self.module = nn.BatchNorm2d(channels, eps=BN_EPS) if len(spec.inputs[0]) == 4 else \
                nn.BatchNorm1d(channels, eps=BN_EPS)
        elif kind == "relu":
            self.module = nn.ReLU()
        elif kind == "activation":
            # at PyTorch's defaults, which the float64 reference uses (ELU_ALPHA, LEAKY_SLOPE)
            self.module = getattr(nn, TORCH_ACTIVATION_MODULES[p["function"]])()
        elif kind == "pool":
            pool = nn.MaxPool2d if p["mode"] == "max" else nn.AvgPool2d
            self.module = pool(p["kernel"], p["stride"], p["pad"], ceil_mode=True)
        elif kind == "lrn":
            self.module = nn.LocalResponseNorm(p["size"], p["alpha"], p["beta"], p["k"])
        elif kind == "dropout":
            self.module = nn.Dropout(p["p"])
        elif kind == "layernorm":
            self.module = nn.LayerNorm(spec.inputs[0][-1])
        elif kind == "gelu":
            self.module = nn.GELU(approximate="tanh")   # the form our runner computes
        elif kind == "embedding":
            self.module = nn.Embedding(p["vocabulary"], spec.output[-1])
        elif kind == "loss":   # a module for its train/eval flag: no loss at inference
            self.module = nn.CrossEntropyLoss(reduction="none")
            self.labels = torch.from_numpy(p["labels"])
        self.torch = torch

    def parameters(self) -> list:
        return list(self.module.parameters()) if self.module is not None else []

    def __call__(self, inputs: list):
        torch, kind = self.torch, self.spec.kind
        if kind == "rnn":
            return self.module(inputs[0])[0]
        if kind == "matmul":
            problem = self.spec.params["problem"]
            a = inputs[0].transpose(-1, -2) if problem.trans_a else inputs[0]
            b = inputs[1].transpose(-1, -2) if problem.trans_b else inputs[1]
            return torch.matmul(a, b)
        if kind == "eltwise":
            return sum(inputs[1:], inputs[0])
        if kind == "tanh":
            return torch.tanh(inputs[0])
        if kind == "concat":
            return torch.cat(inputs, dim=1)
        if kind == "softmax":
            return torch.softmax(inputs[0], dim=-1)
        if kind == "relu" and self.spec.params.get("inplace") and not inputs[0].requires_grad:
            # In place, as the model's own module runs it. A leaf that needs its gradient (the
            # layer-sequence runner's training inputs) cannot be overwritten: out of place there.
            return torch.relu_(inputs[0])
        if kind == "loss":
            if not self.module.training:
                return inputs[0]
            logits = inputs[0]
            rows = self.module(logits.reshape(-1, logits.shape[-1]), self.labels.reshape(-1))
            return rows.reshape(self.labels.shape)
        return self.module(inputs[0])


class TorchModel:
    """A model as its layer sequence in PyTorch: one TorchLayer per occurrence, every entry's
    input tensors made once (shared by the entry's occurrences, read-only)."""

    def __init__(self, model, batch: int, torch, seed: int = 0):
        self.torch = torch
        torch.manual_seed(seed)
        generator = np.random.default_rng(seed)
        self.entries = []
        for spec in model_specs(model, batch):
            inputs = []
            for shape in spec.inputs:
                if spec.kind == "embedding":
                    inputs.append(torch.from_numpy(generator.integers(0, spec.params["vocabulary"], shape)))
                else:
                    inputs.append(torch.from_numpy(generator.uniform(-1, 1, shape).astype(np.float32)))
            layers = [TorchLayer(spec, torch) for _ in range(spec.count)]
            grad = torch.from_numpy(generator.uniform(-1, 1, spec.output).astype(np.float32))
            self.entries.append((spec, inputs, layers, grad))

    def parameters(self) -> list:
        return [p for _, _, layers, _ in self.entries for layer in layers for p in layer.parameters()]

    def set_training(self, training: bool) -> None:
        for spec, inputs, layers, _ in self.entries:
            for layer in layers:
                if layer.module is not None:
                    layer.module.train(training)
            for tensor in inputs:
                if tensor.is_floating_point():
                    tensor.requires_grad_(training and spec.backward and spec.input_grad)

    def forward(self) -> list:
        return [layer(inputs) for _, inputs, layers, _ in self.entries for layer in layers]

    def backward_mask(self) -> list[bool]:
        """Per output of forward(): whether the training step backpropagates from it."""
        return [spec.backward for spec, _, layers, _ in self.entries for _ in layers]

    def gradients(self) -> list:
        return [grad for spec, _, layers, grad in self.entries for _ in layers if spec.backward]

    def inputs(self) -> list:
        return [t for _, inputs, _, _ in self.entries for t in inputs if t.requires_grad]



# Our runner ------------------------------------------------------------------------------------

class OursLayer:
    """One occurrence of a layer on our kernels and numpy, buffers allocated once."""

    def __init__(self, spec: LayerSpec, inputs: list, grad_out: np.ndarray, grad_in: list, threads: int,
                 rng: np.random.Generator):
        self.spec, self.x, self.dy, self.dx, self.threads = spec, inputs, grad_out, grad_in, threads
        self.y = np.empty(spec.output, dtype=np.float32)
        self.weights: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.saved: dict = {}
        kind, p = spec.kind, spec.params
        if kind == "conv":
            cp = p["problem"]
            self._weight("w", cp.w_shape, rng)
            if p["bias"]:
                self._weight("b", (cp.k,), rng)
        elif kind == "fc":
            n_in, n_out = spec.inputs[0][1], spec.output[1]
            self._weight("w", (n_out, n_in), rng)
            if p["bias"]:
                self._weight("b", (n_out,), rng)
        elif kind == "rnn":
            from .ops.rnn import GATES

            rp = p["problem"]
            g, h, i = GATES[rp.cell], rp.hidden, rp.inputs_per_step
            for name, shape in (("weight_ih", (g * h, i)), ("weight_hh", (g * h, h)), ("bias_ih", (g * h,)),
                                ("bias_hh", (g * h,))):
                self._weight(name, shape, rng, 1.0 / np.sqrt(h))
            self.h0 = np.zeros((rp.batch, h), dtype=np.float32)
        elif kind in ("bn", "layernorm"):
            channels = spec.inputs[0][1] if kind == "bn" else spec.inputs[0][-1]
            self._weight("gamma", (channels,), rng)
            self._weight("beta", (channels,), rng)
            if kind == "bn":
                self.running = {"mean": np.zeros(channels, np.float32), "var": np.ones(channels, np.float32)}
        elif kind == "embedding":
            self._weight("table", (p["vocabulary"], spec.output[-1]), rng)
        elif kind == "loss":
            self.labels = p["labels"]
            self.log_p = np.empty(spec.inputs[0], dtype=np.float32)
        elif kind == "pool":
            self._prepare_pool()

    def _weight(self, name: str, shape: tuple, rng, bound: float | None = None) -> None:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        bound = bound or 1.0 / np.sqrt(fan_in)
        self.weights[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
        self.grads[name] = np.zeros(shape, dtype=np.float32)

    # Forward --------------------------------------------------------------------------------

    def forward(self, training: bool) -> None:
        getattr(self, f"_fwd_{self.spec.kind}")(training)

    def _fwd_conv(self, training: bool) -> None:
        from .ops.conv import conv2d

        cp = self.spec.params["problem"]
        conv2d(self.x[0], self.weights["w"], **cp.conv_args(), out=self.y, threads=self.threads)
        if "b" in self.weights:
            self.y += self.weights["b"][:, None, None]

    def _fwd_fc(self, training: bool) -> None:
        from .ops.gemm import gemm

        gemm(self.x[0], self.weights["w"], trans_b=True, c=self.y, threads=self.threads)
        if "b" in self.weights:
            self.y += self.weights["b"]

    def _fwd_rnn(self, training: bool) -> None:
        from .ops.rnn import prepare_rnn_weights, rnn

        cell = self.spec.params["problem"].cell
        if "prepared" not in self.saved:
            # Packed once, as a framework does when the layer is built; the optimizer updates
            # the arrays the packed copy was made from, so the packing is redone after a step.
            self.saved["prepared"] = prepare_rnn_weights(self.weights, cell, threads=self.threads)
        self.saved["out"] = rnn(self.x[0], self.h0, self.saved["prepared"], cell=cell, training=training,
                                threads=self.threads)
        self.y = self.saved["out"].y

    def _fwd_matmul(self, training: bool) -> None:
        from .ops.gemm import gemm

        problem = self.spec.params["problem"]
        for i in range(self.y.shape[0]):
            gemm(self.x[0][i], self.x[1][i], trans_a=problem.trans_a, trans_b=problem.trans_b, c=self.y[i],
                 threads=self.threads)

    def _fwd_relu(self, training: bool) -> None:
        # in place or not, the same pass: our buffers are allocated once, so no fresh output
        np.maximum(self.x[0], 0, out=self.y)

    def _fwd_gelu(self, training: bool) -> None:
        x = self.x[0]   # the tanh form
        np.tanh(0.7978845608 * (x + 0.044715 * x * x * x), out=self.y)
        self.y += 1
        self.y *= 0.5 * x

    def _fwd_dropout(self, training: bool) -> None:
        if not training:   # the identity: frameworks skip it, and so does the predictor
            return
        keep = 1.0 - self.spec.params["p"]
        if "mask" not in self.saved:
            self.saved["mask"] = (np.random.default_rng(0).random(self.y.shape) < keep).astype(np.float32) / keep
        np.multiply(self.x[0], self.saved["mask"], out=self.y)

    def _fwd_eltwise(self, training: bool) -> None:
        np.add(self.x[0], self.x[1], out=self.y)
        for x in self.x[2:]:
            self.y += x

    def _fwd_tanh(self, training: bool) -> None:
        np.tanh(self.x[0], out=self.y)

    def _fwd_activation(self, training: bool) -> None:
        # numpy's one pass per operation: the reference's own formula in float32
        self.y[...] = activation_reference(self.spec.params["function"], self.x[0])[0]

    def _fwd_concat(self, training: bool) -> None:
        start = 0
        for x in self.x:
            self.y[:, start:start + x.shape[1]] = x
            start += x.shape[1]

    def _fwd_softmax(self, training: bool) -> None:
        np.subtract(self.x[0], self.x[0].max(axis=-1, keepdims=True), out=self.y)
        np.exp(self.y, out=self.y)
        self.y /= self.y.sum(axis=-1, keepdims=True)

    def _fwd_loss(self, training: bool) -> None:
        if not training:   # no loss at inference
            return
        x, log_p = self.x[0], self.log_p
        np.subtract(x, x.max(axis=-1, keepdims=True), out=log_p)
        log_p -= np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
        np.negative(np.take_along_axis(log_p, self.labels[..., None], axis=-1)[..., 0], out=self.y)

    def _fwd_embedding(self, training: bool) -> None:
        np.take(self.weights["table"], self.x[0], axis=0, out=self.y)

    @staticmethod
    def _channel_sums(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """Per channel (axis 1) of N x C x ... arrays: the sum of a, or of a * b, in one pass
        over contiguous rows without temporaries (einsum fuses the product into the sum)."""
        n, c = a.shape[:2]
        rows = a.reshape(n * c, -1)
        per_row = rows.sum(axis=1) if b is None else np.einsum("ij,ij->i", rows, b.reshape(n * c, -1))
        return per_row.reshape(n, c).sum(axis=0)

    def _fwd_bn(self, training: bool) -> None:
        x = self.x[0]
        shape = (1, -1) + (1,) * (x.ndim - 2)
        gamma, beta = self.weights["gamma"], self.weights["beta"]
        if training:   # batch statistics: E[x] and E[x^2] - E[x]^2 in two read passes
            count = x.size // x.shape[1]
            mean = self._channel_sums(x) / count
            var = np.maximum(self._channel_sums(x, x) / count - mean * mean, 0)
            inv = (1.0 / np.sqrt(var + BN_EPS)).astype(np.float32)
            self.saved["mean"], self.saved["inv"] = mean.astype(np.float32), inv
            self.running["mean"] += 0.1 * (mean - self.running["mean"])
            self.running["var"] += 0.1 * (var - self.running["var"])
        else:
            mean, inv = self.running["mean"], 1.0 / np.sqrt(self.running["var"] + BN_EPS)
        # y = x * scale + shift: the normalization and BN's Scale layer folded into one transform
        scale = (gamma * inv).astype(np.float32)
        np.multiply(x, scale.reshape(shape), out=self.y)
        self.y += (beta - mean * scale).astype(np.float32).reshape(shape)

    def _fwd_layernorm(self, training: bool) -> None:
        x = self.x[0]
        np.subtract(x, x.mean(axis=-1, keepdims=True), out=self.y)
        inv = 1.0 / np.sqrt(np.mean(np.square(self.y), axis=-1, keepdims=True) + BN_EPS)
        self.y *= inv
        if training:
            self.saved["xhat"], self.saved["inv"] = self.y.copy(), inv
        self.y *= self.weights["gamma"]
        self.y += self.weights["beta"]

    def _lrn_window_sum(self, values: np.ndarray, out: np.ndarray) -> None:
        """Sum over the channel window of each channel, zero beyond the edges (PyTorch's
        LocalResponseNorm: size // 2 channels before, (size - 1) // 2 after)."""
        size = self.spec.params["size"]
        channels = values.shape[1]
        before = size // 2
        out.fill(0)
        for offset in range(-before, size - before):
            lo, hi = max(0, -offset), min(channels, channels - offset)
            if lo < hi:
                out[:, lo:hi] += values[:, lo + offset:hi + offset]

    def _fwd_lrn(self, training: bool) -> None:
        p = self.spec.params
        x = self.x[0]
        scale = self.saved.setdefault("scale", np.empty_like(x))
        self._lrn_window_sum(np.square(x), scale)
        scale *= p["alpha"] / p["size"]
        scale += p["k"]
        np.power(scale, -p["beta"], out=self.y)
        self.y *= x

    # Pooling over a padded copy, one strided view per window offset ---------------------------

    def _prepare_pool(self) -> None:
        p = self.spec.params
        n, c, h, w = self.spec.inputs[0]
        (kh, kw), (sh, sw), (ph, pw) = p["kernel"], p["stride"], p["pad"]
        _, _, out_h, out_w = self.spec.output
        padded = ((out_h - 1) * sh + kh, (out_w - 1) * sw + kw)
        self.direct = (ph, pw) == (0, 0) and padded[0] <= h and padded[1] <= w
        fill = -np.inf if p["mode"] == "max" else 0.0
        self.padded = None if self.direct else np.full((n, c, max(padded[0], h + ph), max(padded[1], w + pw)),
                                                       fill, dtype=np.float32)
        # Divisors of average pooling: the window clipped to the padded input (pad counts).
        rows = np.minimum(np.arange(out_h) * sh - ph + kh, h + ph) - (np.arange(out_h) * sh - ph)
        cols = np.minimum(np.arange(out_w) * sw - pw + kw, w + pw) - (np.arange(out_w) * sw - pw)
        self.inv_count = (1.0 / np.outer(rows, cols)).astype(np.float32)
        if p["mode"] == "max":   # the backward pass's masks and the gradient share of one offset
            self.hit, self.taken = np.empty(self.spec.output, bool), np.empty(self.spec.output, bool)
            self.share = np.empty(self.spec.output, np.float32)

    def _pool_views(self, source: np.ndarray):
        p = self.spec.params
        (kh, kw), (sh, sw) = p["kernel"], p["stride"]
        _, _, out_h, out_w = self.spec.output
        for i in range(kh):
            for j in range(kw):
                yield source[:, :, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw]

    def _pool_source(self) -> np.ndarray:
        if self.direct:
            return self.x[0]
        ph, pw = self.spec.params["pad"]
        _, _, h, w = self.spec.inputs[0]
        self.padded[:, :, ph:ph + h, pw:pw + w] = self.x[0]
        return self.padded

    def _fwd_pool(self, training: bool) -> None:
        views = self._pool_views(self._pool_source())
        np.copyto(self.y, next(views))
        combine = np.maximum if self.spec.params["mode"] == "max" else np.add
        for view in views:
            combine(self.y, view, out=self.y)
        if self.spec.params["mode"] != "max":
            self.y *= self.inv_count

    # Backward (the input gradient unless the layer reads the model input, then weights) --------

    def backward(self) -> None:
        if self.spec.backward:
            getattr(self, f"_bwd_{self.spec.kind}")(self.spec.input_grad)

    def _bwd_conv(self, input_grad: bool) -> None:
        from .ops.conv import conv2d_backward_data, conv2d_backward_filter

        cp = self.spec.params["problem"]
        args = dict(cp.conv_args(), threads=self.threads)
        if input_grad:
            conv2d_backward_data(self.dy, self.weights["w"], input_shape=cp.x_shape, out=self.dx[0], **args)
        conv2d_backward_filter(self.x[0], self.dy, weight_shape=cp.w_shape, out=self.grads["w"], **args)
        if "b" in self.grads:
            np.sum(self.dy, axis=(0, 2, 3), out=self.grads["b"])

    def _bwd_fc(self, input_grad: bool) -> None:
        from .ops.gemm import gemm

        if input_grad:   # dX = dY W
            gemm(self.dy, self.weights["w"], c=self.dx[0], threads=self.threads)
        gemm(self.dy, self.x[0], trans_a=True, c=self.grads["w"], threads=self.threads)   # dW = dY^T X
        if "b" in self.grads:
            np.sum(self.dy, axis=0, out=self.grads["b"])

    def _bwd_rnn(self, input_grad: bool) -> None:
        from .ops.rnn import rnn_backward

        grads = rnn_backward(self.saved["out"], self.dy, input_grad=input_grad, threads=self.threads)
        for name in self.grads:
            np.copyto(self.grads[name], grads[name])
        if input_grad:
            np.copyto(self.dx[0], grads["x"])

    def _bwd_matmul(self, input_grad: bool) -> None:
        from .ops.gemm import gemm

        problem = self.spec.params["problem"]
        a, b = self.x
        da, db = self.dx
        for i in range(self.dy.shape[0]):
            # C = op(A) op(B): d op(A) = dC op(B)^T, d op(B) = op(A)^T dC, stored as A and B are.
            if problem.trans_a:
                gemm(b[i], self.dy[i], trans_a=problem.trans_b, trans_b=True, c=da[i], threads=self.threads)
            else:
                gemm(self.dy[i], b[i], trans_b=not problem.trans_b, c=da[i], threads=self.threads)
            if problem.trans_b:
                gemm(self.dy[i], a[i], trans_a=True, trans_b=problem.trans_a, c=db[i], threads=self.threads)
            else:
                gemm(a[i], self.dy[i], trans_a=not problem.trans_a, c=db[i], threads=self.threads)

    def _bwd_relu(self, input_grad: bool) -> None:
        if input_grad:
            np.multiply(self.dy, self.y > 0, out=self.dx[0])

    def _bwd_gelu(self, input_grad: bool) -> None:
        if input_grad:   # the derivative of the tanh form, recomputed from x
            x = self.x[0]
            t = np.tanh(0.7978845608 * (x + 0.044715 * x * x * x))
            d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608 * (1 + 3 * 0.044715 * x * x)
            np.multiply(self.dy, d, out=self.dx[0])

    def _bwd_tanh(self, input_grad: bool) -> None:
        if input_grad:   # dy (1 - y^2)
            dx = self.dx[0]
            np.square(self.y, out=dx)
            np.subtract(1, dx, out=dx)
            dx *= self.dy

    def _bwd_activation(self, input_grad: bool) -> None:
        if input_grad:   # dy f'(x), the derivative recomputed from the input
            np.multiply(self.dy, activation_reference(self.spec.params["function"], self.x[0])[1], out=self.dx[0])

    def _bwd_dropout(self, input_grad: bool) -> None:
        if input_grad:
            np.multiply(self.dy, self.saved["mask"], out=self.dx[0])

    def _bwd_eltwise(self, input_grad: bool) -> None:
        if input_grad:
            for dx in self.dx:
                np.copyto(dx, self.dy)

    def _bwd_concat(self, input_grad: bool) -> None:
        if input_grad:
            start = 0
            for dx in self.dx:
                np.copyto(dx, self.dy[:, start:start + dx.shape[1]])
                start += dx.shape[1]

    def _bwd_softmax(self, input_grad: bool) -> None:
        if input_grad:
            dot = np.sum(self.dy * self.y, axis=-1, keepdims=True)
            np.subtract(self.dy, dot, out=self.dx[0])
            self.dx[0] *= self.y

    def _bwd_loss(self, input_grad: bool) -> None:
        if input_grad:   # (softmax - one-hot of the label) x the row's output gradient
            dx = self.dx[0]
            np.exp(self.log_p, out=dx)
            picked = np.take_along_axis(dx, self.labels[..., None], axis=-1)
            np.put_along_axis(dx, self.labels[..., None], picked - 1, axis=-1)
            dx *= self.dy[..., None]

    def _bwd_embedding(self, input_grad: bool) -> None:
        table = self.grads["table"]
        table.fill(0)
        np.add.at(table, self.x[0].reshape(-1), self.dy.reshape(-1, table.shape[1]))

    def _bwd_bn(self, input_grad: bool) -> None:
        x, dy, mean, inv = self.x[0], self.dy, self.saved["mean"], self.saved["inv"]
        shape = (1, -1) + (1,) * (dy.ndim - 2)
        count = dy.size // dy.shape[1]
        sum_dy = self._channel_sums(dy)
        # sum(dy * x-hat) = inv (sum(dy x) - mean sum(dy)): x-hat is never stored
        dgamma = inv * (self._channel_sums(dy, x) - mean * sum_dy)
        self.grads["beta"][:] = sum_dy
        self.grads["gamma"][:] = dgamma
        if input_grad:
            # dx = gamma inv (dy - sum(dy)/M - x-hat dgamma/M) = a dy + b x + c per channel
            a = self.weights["gamma"] * inv
            b = -a * inv * dgamma / count
            c = -a * sum_dy / count - b * mean
            dx = self.dx[0]
            scratch = self.saved.setdefault("scratch", np.empty_like(dx))
            np.multiply(x, b.astype(np.float32).reshape(shape), out=dx)
            np.multiply(dy, a.astype(np.float32).reshape(shape), out=scratch)
            dx += scratch
            dx += c.astype(np.float32).reshape(shape)

    def _bwd_layernorm(self, input_grad: bool) -> None:
        dy, xhat, inv = self.dy, self.saved["xhat"], self.saved["inv"]
        rows = dy.reshape(-1, dy.shape[-1])
        np.sum(rows, axis=0, out=self.grads["beta"])
        np.sum(rows * xhat.reshape(rows.shape), axis=0, out=self.grads["gamma"])
        if input_grad:
            g = dy * self.weights["gamma"]
            dx = self.dx[0]
            np.subtract(g, g.mean(axis=-1, keepdims=True), out=dx)
            dx -= xhat * np.mean(g * xhat, axis=-1, keepdims=True)
            dx *= inv

    def _bwd_lrn(self, input_grad: bool) -> None:
        if not input_grad:
            return
        p = self.spec.params
        scale = self.saved["scale"]
        ratio = self.dy * self.y / scale                           # dy_j y_j / scale_j
        window = self.dx[0]
        self._lrn_window_sum(ratio, window)                        # symmetric window for odd sizes
        window *= self.x[0] * (-2.0 * p["alpha"] * p["beta"] / p["size"])
        window += self.dy * np.power(scale, -p["beta"])

    def _bwd_pool(self, input_grad: bool) -> None:
        if not input_grad:
            return
        p = self.spec.params
        target = self.dx[0] if self.direct else self.saved.setdefault("dpadded", np.zeros_like(self.padded))
        target.fill(0)
        grad_views = self._pool_views(target)
        if p["mode"] == "max":   # the first maximum of each window takes the gradient
            source = self.x[0] if self.direct else self.padded
            hit, taken, share = self.hit, self.taken, self.share
            taken.fill(False)
            for view, grad_view in zip(self._pool_views(source), grad_views):
                np.equal(view, self.y, out=hit)
                np.greater(hit, taken, out=hit)          # hit and not taken
                np.multiply(self.dy, hit, out=share)     # faster than a masked add on the strided view
                grad_view += share
                np.logical_or(taken, hit, out=taken)
        else:
            share = self.dy * self.inv_count
            for grad_view in grad_views:
                grad_view += share
        if not self.direct:
            ph, pw = p["pad"]
            _, _, h, w = self.spec.inputs[0]
            np.copyto(self.dx[0], target[:, :, ph:ph + h, pw:pw + w])

    # SGD with momentum: v = mu v + g; w -= lr v ------------------------------------------------

    def update(self, momentum: dict, scratch: np.ndarray) -> None:
        """scratch: a float32 buffer at least as large as the largest weight (no allocation)."""
        for name, weight in self.weights.items():
            velocity = momentum[id(weight)]
            velocity *= SGD_MOMENTUM
            velocity += self.grads[name]
            step = scratch[:weight.size].reshape(weight.shape)
            np.multiply(velocity, SGD_LR, out=step)
            weight -= step
        if self.spec.kind == "rnn":
            self.saved.pop("prepared", None)


class OursModel:
    """A model as its layer sequence on our kernels; every buffer allocated once."""

    def __init__(self, model, batch: int, threads: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.layers: list[OursLayer] = []
        for spec in model_specs(model, batch):
            if spec.kind == "embedding":
                inputs = [rng.integers(0, spec.params["vocabulary"], spec.inputs[0])]
            else:
                inputs = [rng.uniform(-1, 1, shape).astype(np.float32) for shape in spec.inputs]
            grad_out = rng.uniform(-1, 1, spec.output).astype(np.float32)
            grad_in = [np.empty(shape, dtype=np.float32) for shape in spec.inputs]
            self.layers += [OursLayer(spec, inputs, grad_out, grad_in, threads, rng) for _ in range(spec.count)]
        self.momentum = {id(w): np.zeros_like(w) for layer in self.layers for w in layer.weights.values()}
        self.scratch = np.empty(max((w.size for w in self.momentum.values()), default=0), np.float32)

    def forward(self, training: bool) -> None:
        for layer in self.layers:
            layer.forward(training)

    def train_step(self) -> None:
        self.forward(True)
        for layer in reversed(self.layers):
            layer.backward()
        for layer in self.layers:
            layer.update(self.momentum, self.scratch)
