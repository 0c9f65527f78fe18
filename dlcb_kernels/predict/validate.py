"""Validation: reference models run end to end on this CPU, against the predictor's figures.

Two runners time a model's forward pass (inference) and training step at a batch size:

- "torch": PyTorch CPU modules built from the layer list (nn.Conv2d, nn.Linear, nn.RNN/LSTM/GRU,
  nn.BatchNorm2d, max/avg pooling with Caffe's rounding up, nn.LocalResponseNorm, ...); a
  training step is forward, the loss (the sum of every output weighted by a fixed random
  gradient), backward (weights, and inputs except the model's), SGD with momentum.
- "ours": the same layers on our kernels (dlcb_kernels.conv2d and its two backward passes,
  gemm for the fully-connected layers and attention products, rnn/rnn_backward) with numpy for
  the memory-bound layers and the optimizer update, every buffer allocated once. numpy's
  element-wise operations run on one thread and take two to four passes where a fused kernel
  takes one, so these layers run well below the memory bandwidth. That is why the table
  measures every memory-bound layer call too (MemoryProblem, registry.memory_layers: the very
  TorchLayer and OursLayer of these runners), and the predictor charges each layer its call.

**Layer-sequence execution.** A model description lists its layers with their shapes but not
the graph's edges (ResNet shortcuts, inception branches, repeated blocks folded into a count).
Both runners therefore execute the model as the sequence of its layers, each occurrence on an
input tensor of its own declared shape: every layer's compute runs once per step, in one
timed run, which is exactly what the predictor sums. What this leaves out is the data
dependence between layers (a layer reads a fresh buffer, not the one the previous layer just
wrote, so cache reuse across layers is not modelled on either side).

`validate()` times the models, predicts them from a throughput table (predict_model on the
table's records of the matching implementation: torch's records, "*/torch", for the torch
runner; ours for ours) and reports predicted against measured per model and mode, with the
summary the goals ask for, and the held-out per-kernel evaluation (ThroughputModel's
cross-validation). `validation_problems()` lists every kernel problem and memory-bound layer
call those predictions need, and `python -m dlcb_kernels.predict.validate --make-table FILE`
measures them into a table.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

IMPLS = ("torch", "ours")
MODES = ("infer", "train")
PASSES = ("fwd", "bwd_data", "bwd_weights")

# Reference models that run in a few seconds each on a 2-core CPU, and their batch sizes.
DEFAULT_BATCHES = {
    "AlexNetOWT": 8, "ResNet50": 4, "VGG16": 4, "GoogLeNet": 8,
    "EnglishAcoustic": 64, "DeepMNIST": 64, "TextCNN": 64,
}
GOAL_MODEL_ERROR = 0.20         # no model above 20 %
GOAL_MEAN_ERROR = 0.10          # mean |error| over the models at most 10 %

SGD_LR = 1e-4                   # small: repeated steps on fixed gradients must not blow up
SGD_MOMENTUM = 0.9
BN_EPS = 1e-5
# Memory-bound kinds that act on one per-sample tensor (eltwise: on several of that shape).
MEMORY_KINDS = ("bn", "relu", "gelu", "tanh", "lrn", "eltwise", "concat", "softmax", "dropout", "layernorm")


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
    (vocab, dim, tokens); eltwise: `operands` tensors of the per-sample `tensor`; concat: the
    output tensor, filled from one input of its size (the branches' split is not described);
    the other kinds act on their per-sample tensor."""
    kind, d = layer.kind, layer.dims
    if kind == "pool":
        (kh, kw), (sh, sw), (ph, pw) = d["window"], d["stride"], d["pad"]
        p, q = pool_output_size(d["h"], kh, sh, ph), pool_output_size(d["w"], kw, sw, pw)
        spec.inputs, spec.output = [(batch, d["c"], d["h"], d["w"])], (batch, d["c"], p, q)
        spec.params = {"mode": layer.mode, "kernel": (kh, kw), "stride": (sh, sw), "pad": (ph, pw)}
    elif kind == "embedding":
        spec.inputs, spec.output = [(batch, d["tokens"])], (batch, d["tokens"], d["dim"])
        spec.params = {"vocabulary": d["vocab"]}
    elif kind in MEMORY_KINDS:
        tensor = (batch, *d["tensor"])
        spec.inputs = [tensor] * (layer.operands if kind == "eltwise" else 1)
        spec.output = tensor
        if kind == "lrn":   # Caffe's defaults (AlexNet and GoogLeNet use them)
            spec.params = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}
        if kind == "dropout":
            spec.params = {"p": 0.5}
    else:
        raise ValueError(f"layer {layer.name!r} has kind {kind!r}, which the validation runners do not execute")


def model_specs(model, batch: int) -> list[LayerSpec]:
    """Every layer entry of the model, with the predictor's rule for the model input's gradient:
    layers before the first layer with weights run no backward at all; the first layer with
    weights, and kernel layers right after it reading an input of the same size (TextCNN's
    parallel convolutions), compute no input gradient."""
    if not isinstance(batch, int) or isinstance(batch, bool):
        raise TypeError(f"batch must be an int, got {type(batch).__name__}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    layers = list(model.layers)
    specs = [layer_spec(layer, batch) for layer in layers]
    first = next((i for i, layer in enumerate(layers) if layer.weight_elements > 0), len(layers))
    for spec in specs[:first]:
        spec.backward = False
    if first < len(layers):
        specs[first].input_grad = False
        size = layers[first].input_elements(batch)
        i = first + 1
        while layers[first].is_kernel and i < len(layers) and layers[i].is_kernel and \
                layers[i].input_elements(batch) == size:
            specs[i].input_grad = False
            i += 1
    return specs


# Timing ----------------------------------------------------------------------------------------

def _time_runs(step: Callable[[], None], warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return samples


def _summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    return {"count": len(ordered), "median": median, "min": ordered[0], "max": ordered[-1],
            "rel_spread": (ordered[-1] - ordered[0]) / median if median > 0 else float("inf")}


def _check_run_args(batch, threads, warmup, repeats, modes) -> None:
    for name, value, minimum in (("batch", batch, 1), ("threads", threads, 1), ("warmup", warmup, 0),
                                 ("repeats", repeats, 1)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        raise ValueError(f"modes must be a non-empty subset of {MODES}, got {modes!r}")


def _result(implementation: str, model, batch: int, threads: int, samples: dict) -> dict:
    stats = {mode: _summary(values) for mode, values in samples.items()}
    return {
        "model": model.name, "implementation": implementation, "batch": batch, "threads": threads,
        "execution": "layer-sequence",
        "forward_s": stats["infer"]["median"] if "infer" in stats else None,
        "train_step_s": stats["train"]["median"] if "train" in stats else None,
        "samples": samples, "stats": stats,
    }


# PyTorch runner --------------------------------------------------------------------------------

def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


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


def run_torch(model, batch: int, threads: int, *, warmup: int = 2, repeats: int = 5,
              modes: tuple[str, ...] = MODES, seed: int = 0) -> dict:
    """Times the model's forward pass (no_grad, eval mode) and training step (train mode:
    forward, backward of sum(output * fixed gradient) over every layer, SGD with momentum)
    with PyTorch on `threads` threads; medians of `repeats` runs after `warmup`."""
    _check_run_args(batch, threads, warmup, repeats, modes)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        net = TorchModel(model, batch, torch, seed)
        optimizer = torch.optim.SGD(net.parameters(), lr=SGD_LR, momentum=SGD_MOMENTUM)
        samples = {}
        if "infer" in modes:
            net.set_training(False)

            def infer() -> None:
                with torch.no_grad():
                    net.forward()

            samples["infer"] = _time_runs(infer, warmup, repeats)
        if "train" in modes:
            net.set_training(True)
            grads = net.gradients()
            mask = net.backward_mask()
            leaves = net.inputs()

            def train() -> None:
                optimizer.zero_grad()
                for tensor in leaves:
                    tensor.grad = None
                outputs = net.forward()
                torch.autograd.backward([y for y, keep in zip(outputs, mask) if keep], grads)
                optimizer.step()

            samples["train"] = _time_runs(train, warmup, repeats)
    finally:
        torch.set_num_threads(before)
    return _result(f"torch {torch.__version__}", model, batch, threads, samples)


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
            from ..ops.rnn import GATES

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
        from ..ops.conv import conv2d

        cp = self.spec.params["problem"]
        conv2d(self.x[0], self.weights["w"], **cp.conv_args(), out=self.y, threads=self.threads)
        if "b" in self.weights:
            self.y += self.weights["b"][:, None, None]

    def _fwd_fc(self, training: bool) -> None:
        from ..ops.gemm import gemm

        gemm(self.x[0], self.weights["w"], trans_b=True, c=self.y, threads=self.threads)
        if "b" in self.weights:
            self.y += self.weights["b"]

    def _fwd_rnn(self, training: bool) -> None:
        from ..ops.rnn import prepare_rnn_weights, rnn

        cell = self.spec.params["problem"].cell
        if "prepared" not in self.saved:
            # Packed once, as a framework does when the layer is built; the optimizer updates
            # the arrays the packed copy was made from, so the packing is redone after a step.
            self.saved["prepared"] = prepare_rnn_weights(self.weights, cell, threads=self.threads)
        self.saved["out"] = rnn(self.x[0], self.h0, self.saved["prepared"], cell=cell, training=training,
                                threads=self.threads)
        self.y = self.saved["out"].y

    def _fwd_matmul(self, training: bool) -> None:
        from ..ops.gemm import gemm

        problem = self.spec.params["problem"]
        for i in range(self.y.shape[0]):
            gemm(self.x[0][i], self.x[1][i], trans_a=problem.trans_a, trans_b=problem.trans_b, c=self.y[i],
                 threads=self.threads)

    def _fwd_relu(self, training: bool) -> None:
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

    def _fwd_concat(self, training: bool) -> None:
        start = 0
        for x in self.x:
            self.y[:, start:start + x.shape[1]] = x
            start += x.shape[1]

    def _fwd_softmax(self, training: bool) -> None:
        np.subtract(self.x[0], self.x[0].max(axis=-1, keepdims=True), out=self.y)
        np.exp(self.y, out=self.y)
        self.y /= self.y.sum(axis=-1, keepdims=True)

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
        from ..ops.conv import conv2d_backward_data, conv2d_backward_filter

        cp = self.spec.params["problem"]
        args = dict(cp.conv_args(), threads=self.threads)
        if input_grad:
            conv2d_backward_data(self.dy, self.weights["w"], input_shape=cp.x_shape, out=self.dx[0], **args)
        conv2d_backward_filter(self.x[0], self.dy, weight_shape=cp.w_shape, out=self.grads["w"], **args)
        if "b" in self.grads:
            np.sum(self.dy, axis=(0, 2, 3), out=self.grads["b"])

    def _bwd_fc(self, input_grad: bool) -> None:
        from ..ops.gemm import gemm

        if input_grad:   # dX = dY W
            gemm(self.dy, self.weights["w"], c=self.dx[0], threads=self.threads)
        gemm(self.dy, self.x[0], trans_a=True, c=self.grads["w"], threads=self.threads)   # dW = dY^T X
        if "b" in self.grads:
            np.sum(self.dy, axis=0, out=self.grads["b"])

    def _bwd_rnn(self, input_grad: bool) -> None:
        from ..ops.rnn import rnn_backward

        grads = rnn_backward(self.saved["out"], self.dy, input_grad=input_grad, threads=self.threads)
        for name in self.grads:
            np.copyto(self.grads[name], grads[name])
        if input_grad:
            np.copyto(self.dx[0], grads["x"])

    def _bwd_matmul(self, input_grad: bool) -> None:
        from ..ops.gemm import gemm

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


def run_ours(model, batch: int, threads: int, *, warmup: int = 2, repeats: int = 5,
             modes: tuple[str, ...] = MODES, seed: int = 0) -> dict:
    """Times the model's forward pass and training step (forward keeping what backward needs,
    backward in reverse layer order, SGD with momentum) on our kernels and numpy, on
    `threads` threads; medians of `repeats` runs after `warmup`."""
    _check_run_args(batch, threads, warmup, repeats, modes)
    from .. import __version__

    net = OursModel(model, batch, threads, seed)
    samples = {}
    if "infer" in modes:
        samples["infer"] = _time_runs(lambda: net.forward(False), warmup, repeats)
    if "train" in modes:
        samples["train"] = _time_runs(net.train_step, warmup, repeats)
    return _result(f"dlcb_kernels {__version__} (numpy {np.__version__} for memory-bound layers)", model, batch,
                   threads, samples)


RUNNERS = {"torch": run_torch, "ours": run_ours}


# Predictions ----------------------------------------------------------------------------------

def predict_seconds(model, table_doc: dict, batch: int, impl: str) -> dict:
    """{"infer": s, "train": s, "sources": {mode: {source: seconds}}} from predict_model on the
    table's records of the runner's implementation: "torch" (conv/cpu/torch, gemm/cpu/torch,
    rnn/cpu/torch) or "ours" (provider ours)."""
    from .kernel_model import ThroughputModel
    from .model_time import predict_model

    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    kernels = ThroughputModel(table_doc, impl=impl)     # fitted once for both modes
    out: dict = {"sources": {}}
    for mode in MODES:
        prediction = predict_model(model, kernels, batch=batch, mode=mode)
        out[mode] = prediction.step_seconds
        sources = {"memory": prediction.optimizer_seconds} if prediction.optimizer_seconds else {}
        for layer in prediction.layers:
            for source, seconds in layer.sources.items():
                sources[source] = sources.get(source, 0.0) + seconds
        out["sources"][mode] = sources
    return out


# Validation ------------------------------------------------------------------------------------

def relative_error(predicted: float, measured: float) -> float:
    """(predicted - measured) / measured: positive when the prediction is too slow."""
    if not measured > 0:
        raise ValueError(f"measured time must be > 0, got {measured}")
    return (predicted - measured) / measured


def validate(table_doc: dict, models, batch_by_model: dict, threads: int, impls=IMPLS, *,
             warmup: int = 2, repeats: int = 5, runners: dict | None = None,
             predictor: Callable | None = None, progress=None) -> list[dict]:
    """Measures every model with every runner in `impls`, predicts it from the table, and
    returns one row per (model, implementation, mode): model, impl, mode, batch, measured_s,
    predicted_s, error (relative, signed), sources. `runners` and `predictor`
    (model, table_doc, batch, impl) -> {"infer": s, "train": s} replace the real ones in tests."""
    impls = tuple(impls)
    unknown = set(impls) - set(IMPLS)
    if unknown or not impls:
        raise ValueError(f"impls must be a non-empty subset of {IMPLS}, got {impls!r}")
    runners = runners or RUNNERS
    predictor = predictor or predict_seconds
    rows = []
    for model in models:
        if model.name not in batch_by_model:
            raise ValueError(f"batch_by_model has no batch size for {model.name}")
        batch = batch_by_model[model.name]
        for impl in impls:
            if impl == "torch" and runners is RUNNERS and not torch_available():
                _note(progress, f"{model.name}: torch is not installed; skipping its runner")
                continue
            predicted = predictor(model, table_doc, batch, impl)
            _note(progress, f"{model.name} batch {batch}, {impl}: measuring...")
            measured = runners[impl](model, batch, threads, warmup=warmup, repeats=repeats)
            for mode, key in (("infer", "forward_s"), ("train", "train_step_s")):
                rows.append({
                    "model": model.name, "impl": impl, "mode": mode, "batch": batch, "threads": threads,
                    "measured_s": measured[key], "predicted_s": predicted[mode],
                    "error": relative_error(predicted[mode], measured[key]),
                    "implementation": measured["implementation"],
                    "measured_spread": measured["stats"][mode]["rel_spread"],
                    "sources": predicted.get("sources", {}).get(mode, {}),
                })
                _note(progress, f"  {mode:<5} measured {measured[key] * 1e3:9.2f} ms, predicted "
                                f"{predicted[mode] * 1e3:9.2f} ms ({rows[-1]['error']:+.1%})")
    return rows


def summarize_rows(rows: list[dict]) -> list[dict]:
    """Per (impl, mode): models, mean |error|, max |error| and its model, count within 20 %,
    and whether the goals (mean <= 10 %, none above 20 %) are met."""
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["impl"], row["mode"]), []).append(row)
    out = []
    for (impl, mode), group in groups.items():
        errors = [abs(r["error"]) for r in group]
        worst = max(group, key=lambda r: abs(r["error"]))
        mean = sum(errors) / len(errors)
        out.append({"impl": impl, "mode": mode, "models": len(group), "mean_abs_error": mean,
                    "max_abs_error": abs(worst["error"]), "worst_model": worst["model"],
                    "within_20pct": sum(e <= GOAL_MODEL_ERROR for e in errors),
                    "goal_met": len(group) >= 6 and mean <= GOAL_MEAN_ERROR and
                    all(e <= GOAL_MODEL_ERROR for e in errors)})
    return out


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def held_out_summary(table_doc: dict, impl: str = "best") -> list[dict]:
    """The per-kernel held-out evaluation: ThroughputModel.cross_validate() (every record
    predicted by a model fitted without it), |error| median and 90th percentile per op and
    overall. impl: "best", or a runner name ("torch", "ours") for that runner's records."""
    from .kernel_model import ThroughputModel

    results = ThroughputModel(table_doc, impl=impl).cross_validate()
    groups: dict = {"all": []}
    for result in results:
        error = abs(result["rel_error"])
        groups.setdefault(result["op"], []).append(error)
        groups["all"].append(error)
    return [{"op": op, "count": len(errors), "median_abs_error": _percentile(errors, 50),
             "p90_abs_error": _percentile(errors, 90)}
            for op, errors in groups.items() if errors]


def format_rows(rows: list[dict], summary: list[dict], held_out: dict | None = None) -> str:
    """The readable table: one line per row, the summary, the held-out figures per runner."""
    header = (f"{'model':<16} {'impl':<6} {'mode':<5} {'batch':>5} {'measured ms':>12} {'predicted ms':>13} "
              f"{'error':>8}")
    lines = [header]
    for r in rows:
        flag = "  > 20%" if abs(r["error"]) > GOAL_MODEL_ERROR else ""
        lines.append(f"{r['model']:<16} {r['impl']:<6} {r['mode']:<5} {r['batch']:>5} {r['measured_s'] * 1e3:>12.2f} "
                     f"{r['predicted_s'] * 1e3:>13.2f} {r['error']:>+8.1%}{flag}")
    lines.append("")
    lines.append("summary (goal: mean |error| <= 10% over >= 6 models, none above 20%):")
    for s in summary:
        lines.append(f"  {s['impl']:<6} {s['mode']:<5} {s['models']} models: mean |error| {s['mean_abs_error']:.1%}, "
                     f"max {s['max_abs_error']:.1%} ({s['worst_model']}), {s['within_20pct']}/{s['models']} within "
                     f"20% -> {'met' if s['goal_met'] else 'not met'}")
    for impl, figures in (held_out or {}).items():
        lines.append("")
        lines.append(f"held-out kernels, {impl} records (goal: median |error| <= 5%, 90th percentile <= 12%):")
        for h in figures:
            lines.append(f"  {h['op']:<5} {h['count']:>4} records: median {h['median_abs_error']:.1%}, "
                         f"p90 {h['p90_abs_error']:.1%}")
        if not figures:
            lines.append("  no records to cross-validate")
    lines.append("")
    lines.append("execution: layer-sequence (each layer on an input of its declared shape; see "
                 "dlcb_kernels/predict/validate.py)")
    return "\n".join(lines)


def _note(progress, text: str) -> None:
    if progress is not None:
        print(text, file=progress, flush=True)


# The validation table --------------------------------------------------------------------------

def validation_problems(models, batch_by_model: dict) -> list:
    """Every kernel problem of the models at their batch sizes in every pass a training step
    runs (forward, backward data, backward weights; no backward data where the model input
    needs no gradient, as model_specs and the predictor decide), and every memory-bound layer
    call the predictor looks up (MemoryProblem: the inference forward, the training forward, the
    backward), once each, labelled with every (model, layer, pass, count) it stands for: the
    exact records the validation looks up."""
    from ..problems.memory import MEMORY_KINDS, MemoryProblem
    from ..suites import SuiteProblem

    users: dict = {}
    batches: dict = {}
    for model in models:
        if model.name not in batch_by_model:
            raise ValueError(f"batch_by_model has no batch size for {model.name}")
        batch = batch_by_model[model.name]
        for layer, spec in zip(model.layers, model_specs(model, batch)):
            if layer.kind in MEMORY_KINDS:
                calls = [("fwd", True)] + ([("fwd", False)] if layer.kind != "dropout" else [])
                calls += [("bwd_data", True)] if spec.backward and spec.input_grad else []
                for pass_, training in calls:
                    problem = MemoryProblem.from_layer(layer, batch, pass_, training=training)
                    label = pass_ if pass_ != "fwd" else f"fwd {'train' if training else 'infer'}"
                    users.setdefault(problem, []).append({"model": model.name, "layer": layer.name, "pass": label,
                                                          "count": layer.count})
                    batches.setdefault(problem, set()).add(batch)
            if not layer.is_kernel:
                continue
            passes = [p for p in PASSES if p == "fwd" or (spec.backward and (p != "bwd_data" or spec.input_grad))]
            for pass_ in passes:
                for problem, times in layer.kernel_problems(batch, pass_):
                    users.setdefault(problem, []).append({"model": model.name, "layer": layer.name, "pass": pass_,
                                                          "count": layer.count * times})
                    batches.setdefault(problem, set()).add(batch)
    return [SuiteProblem(problem, {"set": "validation", "batch": sorted(batches[problem]), "layers": layers})
            for problem, layers in users.items()]


def make_table(path, models, batch_by_model: dict, threads: int, *, impls=IMPLS, max_time: float = 0.5,
               progress=sys.stderr) -> dict:
    """Measures validation_problems() with torch's and our implementations (dlcb_kernels.bench;
    the memory-bound layers with the runners' own layers, registry.memory_layers)
    into a throughput table at `path`; returns the table."""
    from .. import registry
    from ..bench import BenchConfig, run_bench
    from ..measure import Settings

    impls = tuple(impls)
    if set(impls) - set(IMPLS) or not impls:
        raise ValueError(f"impls must be a non-empty subset of {IMPLS}, got {impls!r}")
    problems = validation_problems(models, batch_by_model)
    ops = sorted({sp.problem.op for sp in problems})
    # "torch" is the variant of PyTorch's implementations, "ours" the provider of ours
    implementations = registry.select(ops, ",".join(impls), backend="cpu")
    settings = Settings(max_time=max_time, min_time=min(0.2, max_time), min_samples=5)
    config = BenchConfig(problems, implementations, threads, settings=settings, suite="validation")
    return run_bench(config, path, progress_stream=progress)


def parse_batches(models, batch: int | None) -> dict:
    """Each model's batch: `batch` for all when given, else DEFAULT_BATCHES (8 for others)."""
    return {model.name: batch or DEFAULT_BATCHES.get(model.name, 8) for model in models}


def resolve_models(names) -> list:
    from ..models import get_model

    return [get_model(name) for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlcb_kernels.predict.validate",
        description="Build the throughput table the validation needs: every kernel problem of the "
                    "models at their batch sizes, in every pass, with torch's and our implementations.")
    parser.add_argument("--make-table", type=str, required=True, metavar="FILE", help="table to write (JSON)")
    parser.add_argument("--models", default=",".join(DEFAULT_BATCHES), metavar="NAME,...",
                        help=f"models (default: {','.join(DEFAULT_BATCHES)})")
    parser.add_argument("--batch", type=int, default=None,
                        help="one batch size for every model (default: each model's own, as dlcb validate)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: OpenMP's)")
    parser.add_argument("--impl", default="torch,ours", help="torch, ours or both (default: torch,ours)")
    parser.add_argument("--max-time", type=float, default=0.5,
                        help="seconds of samples per record before giving up on the noise target (default 0.5)")
    args = parser.parse_args(argv)
    from .. import _cpu

    try:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
        impls = tuple(i.strip() for i in args.impl.split(",") if i.strip())
        if set(impls) - set(IMPLS) or not impls:
            raise ValueError(f"--impl must name torch and/or ours, got {args.impl!r}")
        for name in ("batch", "threads"):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
        if args.max_time <= 0:
            raise ValueError(f"--max-time must be > 0, got {args.max_time}")
        models = resolve_models(names)
        threads = args.threads or _cpu.omp_max_threads()
        make_table(args.make_table, models, parse_batches(models, args.batch), threads, impls=impls,
                   max_time=args.max_time)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"table: {args.make_table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
