"""A torch.nn.Module as a dlcb model: traced with torch.fx on an example input, every node's
shape propagated (ShapeProp), and each node that does work mapped to a layer, with the graph's
edges in each layer's `reads` (residual additions and concatenations name both producers).

Per-sample shapes: the example input's first dimension is the batch (for a recurrent layer
without batch_first, the second), and every layer's shape is given without it.

What maps to what (anything else is an error naming the node):
  Conv2d -> conv (no dilation: the format has none); Linear -> fc (tokens: every dimension
  between the batch and the features); BatchNorm1d/2d -> bn; LayerNorm -> layernorm;
  ReLU, ReLU6, Hardtanh, relu/relu6/clamp functions -> relu (the same pass over the tensor; the
  clipping's comparison is not a separate cost; inplace=True or relu_ kept: an in-place call
  allocates no output, which on a fresh large tensor costs more than the pass); GELU -> gelu; Tanh -> tanh; Softmax -> softmax;
  SiLU, Sigmoid, ELU, Mish, Softplus, LeakyReLU, Hardswish, Hardsigmoid (modules, functions or
  tensor methods) -> activation with that function (in place or not: charged out of place);
  Dropout -> dropout; MaxPool2d/AvgPool2d -> pool; AdaptiveAvgPool2d to 1x1 -> a global pool;
  add of two tensors (and sub, mul) -> eltwise; cat -> concat; Embedding -> embedding;
  LSTM/GRU/RNN -> one rnn layer per stacked layer (bidirectional: count 2); matmul/bmm of two
  activations -> matmul; MultiheadAttention -> in-projection fc, QK^T matmul, softmax, dropout of
  the attention weights at the module's rate (if above 0), AV matmul, out-projection fc;
  TransformerEncoderLayer -> that attention, then the residual adds, two layernorms, the
  two-layer feed-forward with its activation, and its dropouts.
  Views and free reshapes (flatten, view, reshape, permute, transpose, contiguous, squeeze,
  unsqueeze, getitem, size, chunk, split, Identity) cost nothing and map to no layer; a tensor
  times or plus a constant is not charged either.
What the format cannot say is written in the model's `source`: a pool whose torch output size
differs from the format's (Caffe) rounding. Dropout keeps its rate.
"""

from __future__ import annotations

import dataclasses
import math
import operator

from ..problems.memory import TORCH_ACTIVATION_MODULES
from .layers import ACTIVATIONS, MODEL_INPUT, Layer, Model

_FREE_FUNCTIONS = {"flatten", "reshape", "view", "permute", "transpose", "contiguous", "squeeze", "unsqueeze",
                   "getitem", "size", "dim", "chunk", "split", "unbind", "expand", "expand_as", "t", "type_as",
                   "float", "to", "detach", "clone", "getattr", "floordiv", "narrow", "select"}


# Element-wise activations of the "activation" kind by module class; as functions and tensor
# methods they go by their own names, ACTIVATIONS.
_ACTIVATION_MODULES = {module: function for function, module in TORCH_ACTIVATION_MODULES.items()}


def _name_of(target) -> str:
    return getattr(target, "__name__", str(target)).lstrip("_").rstrip("_")


class _Importer:
    def __init__(self, torch, graph_module):
        self.torch = torch
        self.gm = graph_module
        self.modules = dict(graph_module.named_modules())
        self.layers: list[Layer] = []
        self.notes: list[str] = []
        self.producer: dict = {}          # fx node -> names of the layers whose output it carries

    # shapes ---------------------------------------------------------------------------------
    @staticmethod
    def shape(node) -> tuple:
        meta = node.meta.get("tensor_meta")
        if meta is None:
            raise ValueError(f"node {node.name}: no tensor shape (it did not run on the example input)")
        if not hasattr(meta, "shape"):  # a tuple output (LSTM, attention): the first tensor's
            meta = meta[0]
        return tuple(int(d) for d in meta.shape)

    def per_sample(self, node) -> tuple:
        return self.shape(node)[1:]

    # graph ------------------------------------------------------------------------------------
    def reads_of(self, node) -> tuple:
        reads = []
        for arg in node.all_input_nodes:
            for name in self.producer.get(arg, ()):
                if name not in reads:
                    reads.append(name)
        return tuple(reads)

    def add(self, node, layers: list[Layer]) -> None:
        """Appends layers made for a node, chained: the first reads what the node reads."""
        reads = self.reads_of(node)
        for layer in layers:
            layer_reads = layer.reads or reads
            self.layers.append(dataclasses.replace(layer, reads=layer_reads))
            reads = (layer.name,)
        self.producer[node] = reads

    def run(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.producer[node] = (MODEL_INPUT,)
            elif node.op in ("output", "get_attr"):
                self.producer[node] = ()
            elif node.op == "call_module":
                self.module_node(node, self.modules[node.target])
            else:
                self.function_node(node)

    # modules ----------------------------------------------------------------------------------
    def module_node(self, node, module) -> None:
        nn = self.torch.nn
        name = node.name
        if isinstance(module, (nn.Identity, nn.Flatten, nn.Unflatten)):
            self.producer[node] = self.reads_of(node)
        elif isinstance(module, nn.Conv2d):
            self.add(node, [self.conv(node, module, name)])
        elif isinstance(module, nn.Linear):
            self.add(node, [self.linear(node.args[0], name, module.in_features, module.out_features,
                                        module.bias is not None)])
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self.add(node, [Layer(name, "bn", self.per_sample(node))])
        elif isinstance(module, nn.LayerNorm):
            self.add(node, [Layer(name, "layernorm", self.per_sample(node))])
        elif isinstance(module, (nn.ReLU, nn.ReLU6, nn.Hardtanh)):
            self.add(node, [Layer(name, "relu", self.per_sample(node), inplace=bool(module.inplace))])
        elif isinstance(module, nn.GELU):
            self.add(node, [Layer(name, "gelu", self.per_sample(node))])
        elif isinstance(module, nn.Tanh):
            self.add(node, [Layer(name, "tanh", self.per_sample(node))])
        elif type(module).__name__ in _ACTIVATION_MODULES:
            self.add(node, [self.activation(node, _ACTIVATION_MODULES[type(module).__name__])])
        elif isinstance(module, nn.Softmax):
            self.add(node, [Layer(name, "softmax", self.per_sample(node))])
        elif isinstance(module, nn.Dropout):
            self.add(node, [Layer(name, "dropout", self.per_sample(node), rate=module.p)])
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            self.add(node, [self.pool(node, module, name)])
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            self.add(node, [self.global_pool(node, module.output_size, name)])
        elif isinstance(module, nn.Embedding):
            tokens = math.prod(self.per_sample(node.args[0])) if self.per_sample(node.args[0]) else 1
            self.add(node, [Layer(name, "embedding", (module.num_embeddings, module.embedding_dim, tokens))])
        elif isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
            self.add(node, self.recurrent(node, module, name))
        elif isinstance(module, nn.MultiheadAttention):
            self.add(node, self.attention(node.args[0], module, name))
        elif isinstance(module, nn.TransformerEncoderLayer):
            self.add(node, self.encoder_layer(node, module, name))
        else:
            raise ValueError(f"cannot import node {name} ({type(module).__name__}): no dlcb layer kind for it")

    def conv(self, node, module, name) -> Layer:
        if tuple(module.dilation) != (1, 1):
            raise ValueError(f"cannot import node {name}: a dilated convolution (dilation {module.dilation}); the "
                             "model format has no dilation")
        c, h, w = self.per_sample(node.args[0])
        r, s = module.kernel_size
        if isinstance(module.padding, str):  # "same" / "valid"
            pad = ((r - 1) // 2, (s - 1) // 2) if module.padding == "same" else (0, 0)
        else:
            pad = tuple(module.padding)
        return Layer(name, "conv", (c, h, w, module.out_channels, r, s, pad, tuple(module.stride), module.groups),
                     bias=module.bias is not None)

    def linear(self, input_node, name, inputs, outputs, bias) -> Layer:
        shape = self.per_sample(input_node)
        tokens = math.prod(shape[:-1]) if len(shape) > 1 else 1
        return Layer(name, "fc", (inputs, outputs), bias=bias, tokens=tokens)

    def pool(self, node, module, name) -> Layer:
        c, h, w = self.per_sample(node.args[0])
        window = _pair(module.kernel_size)
        stride = _pair(module.stride or module.kernel_size)
        pad = _pair(module.padding)
        mode = "max" if isinstance(module, self.torch.nn.MaxPool2d) else "avg"
        layer = Layer(name, "pool", (c, h, w, window, stride, pad), mode=mode)
        if layer.output_tensor() != self.per_sample(node):
            self.notes.append(f"{name}: torch's output {self.per_sample(node)} is costed at the format's rounding, "
                              f"{layer.output_tensor()}")
        return layer

    def global_pool(self, node, output_size, name) -> Layer:
        if _pair(output_size) != (1, 1):
            raise ValueError(f"cannot import node {name}: adaptive pooling to {output_size}; only to 1x1 (global)")
        c, h, w = self.per_sample(node.args[0])
        return Layer(name, "pool", (c, h, w, (h, w), (h, w), (0, 0)), mode="avg")

    def recurrent(self, node, module, name) -> list[Layer]:
        x = self.shape(node.args[0])
        if len(x) != 3:
            raise ValueError(f"cannot import node {name}: a {type(module).__name__} needs a 3-D input, got {x}")
        timesteps = x[1] if module.batch_first else x[0]
        cell = {"LSTM": "lstm", "GRU": "gru", "RNN": "vanilla"}[type(module).__name__]
        directions = 2 if module.bidirectional else 1
        layers = []
        for index in range(module.num_layers):
            size = module.input_size if index == 0 else module.hidden_size * directions
            layers.append(Layer(f"{name}_l{index}", "rnn", (size, module.hidden_size, timesteps), count=directions,
                                cell=cell, bias=module.bias))
        return layers

    def attention(self, input_node, module, name, *, batch_first=None) -> list[Layer]:
        x = self.shape(input_node)
        first = module.batch_first if batch_first is None else batch_first
        length, embed = (x[1], x[2]) if first else (x[0], x[2])
        heads = module.num_heads
        head_dim = embed // heads
        weights = (heads, length, length)
        # torch drops attention weights at the module's rate in training: with a 4-head encoder
        # over 128 tokens those are a quarter of the elements its dropouts draw
        weights_dropout = [Layer(f"{name}_weights_dropout", "dropout", weights, rate=module.dropout)] \
            if module.dropout > 0 else []
        return [Layer(f"{name}_in_proj", "fc", (embed, 3 * embed), tokens=length),
                Layer(f"{name}_scores", "matmul", (length, length, head_dim), heads=heads, trans_b=True),
                Layer(f"{name}_softmax", "softmax", weights),
                *weights_dropout,
                Layer(f"{name}_context", "matmul", (length, head_dim, length), heads=heads),
                Layer(f"{name}_out_proj", "fc", (embed, embed), tokens=length)]

    def encoder_layer(self, node, module, name) -> list[Layer]:
        x = self.shape(node.args[0])
        first = module.self_attn.batch_first
        length, embed = (x[1], x[2]) if first else (x[0], x[2])
        tensor = (length, embed)
        hidden = module.linear1.out_features
        activation = "gelu" if "gelu" in _name_of(getattr(module, "activation", "relu")).lower() else "relu"
        rate = module.dropout.p
        source = self.reads_of(node)
        attention = self.attention(node.args[0], module.self_attn, f"{name}_attn", batch_first=first)
        norm_first = module.norm_first
        layers: list[Layer] = []
        if norm_first:
            layers.append(Layer(f"{name}_norm1", "layernorm", tensor, reads=source))
        layers += attention
        layers.append(Layer(f"{name}_dropout1", "dropout", tensor, rate=rate))
        layers.append(Layer(f"{name}_add1", "eltwise", tensor, reads=(f"{name}_dropout1", *source)))
        if not norm_first:
            layers.append(Layer(f"{name}_norm1", "layernorm", tensor))
        after_attention = layers[-1].name
        if norm_first:
            layers.append(Layer(f"{name}_norm2", "layernorm", tensor))
        layers += [Layer(f"{name}_linear1", "fc", (embed, hidden), tokens=length),
                   Layer(f"{name}_{activation}", activation, (length, hidden)),
                   Layer(f"{name}_dropout", "dropout", (length, hidden), rate=rate),
                   Layer(f"{name}_linear2", "fc", (hidden, embed), tokens=length),
                   Layer(f"{name}_dropout2", "dropout", tensor, rate=rate),
                   Layer(f"{name}_add2", "eltwise", tensor, reads=(f"{name}_dropout2", after_attention))]
        if not norm_first:
            layers.append(Layer(f"{name}_norm2", "layernorm", tensor))
        return layers

    # functions --------------------------------------------------------------------------------
    def function_node(self, node) -> None:
        target = node.target
        fname = target if isinstance(target, str) else _name_of(target)
        tensors = [arg for arg in node.args if hasattr(arg, "op")]
        name = node.name
        if fname in _FREE_FUNCTIONS or target is getattr:
            self.producer[node] = self.reads_of(node)
        elif fname in ("relu", "relu_", "relu6", "hardtanh", "clamp", "clamp_min", "clip", "clamp_", "hardtanh_"):
            inplace = fname.endswith("_") or bool(node.kwargs.get("inplace", False))
            self.add(node, [Layer(name, "relu", self.per_sample(node), inplace=inplace)])
        elif fname == "gelu":
            self.add(node, [Layer(name, "gelu", self.per_sample(node))])
        elif fname == "tanh":
            self.add(node, [Layer(name, "tanh", self.per_sample(node))])
        elif fname.rstrip("_") in ACTIVATIONS:
            self.add(node, [self.activation(node, fname.rstrip("_"))])
        elif fname in ("softmax", "log_softmax"):
            self.add(node, [Layer(name, "softmax", self.per_sample(node))])
        elif fname == "dropout":
            rate = node.kwargs.get("p", node.args[1] if len(node.args) > 1 else 0.5)
            self.add(node, [Layer(name, "dropout", self.per_sample(node), rate=rate)])
        elif fname in ("adaptive_avg_pool2d",):
            self.add(node, [self.global_pool(node, node.args[1] if len(node.args) > 1 else node.kwargs["output_size"],
                                             name)])
        elif fname in ("add", "iadd", "sub", "mul", "imul") or target in (operator.add, operator.iadd, operator.mul,
                                                                           operator.sub):
            if len(tensors) < 2:                     # a tensor and a constant: not charged
                self.producer[node] = self.reads_of(node)
            else:
                self.add(node, [Layer(name, "eltwise", self.per_sample(node), operands=len(tensors))])
        elif fname == "cat":
            self.add(node, [Layer(name, "concat", self.per_sample(node))])
        elif fname in ("matmul", "bmm") or target is operator.matmul:
            self.add(node, [self.matmul(node, tensors, name)])
        else:
            raise ValueError(f"cannot import node {name} ({fname}): no dlcb layer kind for it")

    def activation(self, node, function: str) -> Layer:
        """An activation layer; ELU, leaky ReLU and softplus are measured at PyTorch's defaults,
        which only the parameter, not the cost, would change."""
        return Layer(node.name, "activation", self.per_sample(node), function=function)

    def matmul(self, node, tensors, name) -> Layer:
        if len(tensors) != 2:
            raise ValueError(f"cannot import node {name}: matmul of {len(tensors)} tensors")
        a, b = self.shape(tensors[0]), self.shape(tensors[1])
        if len(a) < 3 or len(b) < 3:
            raise ValueError(f"cannot import node {name}: a matmul whose operands {a} @ {b} lack a batch dimension")
        m, k, n = a[-2], a[-1], b[-1]
        heads = math.prod(a[1:-2]) if len(a) > 3 else 1
        return Layer(name, "matmul", (m, n, k), heads=heads)


def _pair(value) -> tuple:
    return (value, value) if isinstance(value, int) else tuple(value)


def from_torch(module, example_input, *, name: str | None = None) -> Model:
    """The dlcb Model of `module` run on `example_input` (a tensor, batch first; one sample is
    enough). ValueError naming the node for anything the format cannot express."""
    try:
        import torch
        import torch.fx
        from torch.fx.passes.shape_prop import ShapeProp
    except ImportError:
        raise ValueError("importing a torch model needs PyTorch: pip install torch") from None
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}")
    if example_input.dim() < 2:
        raise ValueError(f"example_input must have a batch dimension first, got shape {tuple(example_input.shape)}")

    leaves = (torch.nn.MultiheadAttention, torch.nn.TransformerEncoderLayer, torch.nn.LSTM, torch.nn.GRU,
              torch.nn.RNN)

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualified_name):
            return isinstance(m, leaves) or super().is_leaf_module(m, qualified_name)

    was_training = module.training
    module.eval()
    try:
        graph = Tracer().trace(module)
        gm = torch.fx.GraphModule(module, graph)
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    except Exception as exc:  # noqa: BLE001 - torch.fx raises many kinds for untraceable code
        raise ValueError(f"torch.fx could not trace {type(module).__name__}: {type(exc).__name__}: {exc}") from None
    finally:
        module.train(was_training)
    importer = _Importer(torch, gm)
    importer.run()
    if not importer.layers:
        raise ValueError(f"{type(module).__name__} has no layer that does work")
    source = f"imported from torch ({type(module).__name__}) with torch.fx on an input of {tuple(example_input.shape)}"
    if importer.notes:
        source += "; " + "; ".join(importer.notes)
    return Model(name or type(module).__name__, tuple(importer.layers), tuple(example_input.shape[1:]), source)
