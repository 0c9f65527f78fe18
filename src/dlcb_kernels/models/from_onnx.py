"""An ONNX file as a dlcb model: shapes from ONNX shape inference, each node that does work on the
model's data mapped to a layer, the graph's edges in each layer's `reads`.

The model's first input is its data, batch first. A symbolic batch dimension is fixed to 1 before
shape inference; a fixed one (N) is divided out of every layer's work. Nodes that only compute
shapes (Shape, and whatever reads only shapes and constants) and nodes on constants are free;
so are views (Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Slice, Split, Identity, Cast,
Expand, Gather with constant indices) and a tensor times, plus or over a constant (a bias add
after MatMul: the fc layer counts its bias).

  Conv -> conv (no dilation); Gemm, MatMul by a constant -> fc; MatMul of two activations ->
  matmul; BatchNormalization -> bn (exporters fold it into the convolution in eval mode, when
  there is no BatchNormalization left); LayerNormalization -> layernorm; Relu, Clip -> relu;
  Gelu, Erf -> gelu; Tanh -> tanh; Sigmoid, Elu, Softplus, Mish, LeakyRelu, HardSwish, HardSigmoid
  -> activation with that function; Softmax, LogSoftmax -> softmax; Dropout -> dropout;
  MaxPool/AveragePool -> pool; GlobalAveragePool -> a global pool; Add/Sub/Mul/Div of two
  activations -> eltwise; Concat of activations -> concat; Gather from a constant table ->
  embedding; LSTM/GRU/RNN -> rnn (bidirectional: count 2).
Anything else on the data is an error naming the node.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from .layers import MODEL_INPUT, Layer, Model

_VIEWS = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice", "Split", "Identity", "Cast",
          "Expand", "Pad", "Shape", "Size", "ConstantOfShape", "Constant", "Range", "Tile"}
_SCALING = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt"}      # with a constant operand: not charged
_ONE_PASS = {"Relu": "relu", "Clip": "relu", "Gelu": "gelu", "Erf": "gelu", "Tanh": "tanh",
             "Softmax": "softmax", "LogSoftmax": "softmax", "Dropout": "dropout",
             "LayerNormalization": "layernorm"}
# Element-wise activations of the "activation" kind.
_ACTIVATIONS = {"Sigmoid": "sigmoid", "Elu": "elu", "Softplus": "softplus", "Mish": "mish",
                "LeakyRelu": "leaky_relu", "HardSwish": "hardswish", "HardSigmoid": "hardsigmoid"}


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Importer:
    def __init__(self, graph):
        self.graph = graph
        self.constants = {init.name: tuple(init.dims) for init in graph.initializer}
        self.shapes: dict = {}
        for value in list(graph.input) + list(graph.value_info) + list(graph.output):
            dims = value.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self.shapes[value.name] = tuple(d.dim_value for d in dims)
        data = [v for v in graph.input if v.name not in self.constants]
        if not data:
            raise ValueError("the ONNX graph has no input that is not a weight")
        self.input = data[0].name
        self.batch = self.shape(self.input)[0]
        self.data = {self.input}                 # values that carry the model's data
        self.producer = {self.input: (MODEL_INPUT,)}
        self.layers: list[Layer] = []
        self.names: set = set()

    def shape(self, value: str) -> tuple:
        if value in self.constants:
            return self.constants[value]
        if value not in self.shapes:
            raise ValueError(f"no inferred shape for {value!r}: the ONNX shape inference could not size it")
        return self.shapes[value]

    def per_sample(self, value: str) -> tuple:
        shape = self.shape(value)
        if shape and shape[0] == self.batch:
            return shape[1:] or (1,)
        return (max(1, math.prod(shape) // self.batch),)

    def name_for(self, node) -> str:
        base = (node.name or f"{node.op_type}_{len(self.layers)}").strip("/").replace("/", "_") or node.op_type
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    def run(self) -> None:
        for node in self.graph.node:
            inputs = [i for i in node.input if i]
            data_in = [i for i in inputs if i in self.data]
            if not data_in or node.op_type in ("Shape", "Size"):
                continue                            # shapes and constants: free
            reads = tuple(dict.fromkeys(r for i in data_in for r in self.producer.get(i, ())))
            for out in node.output:
                self.data.add(out)
                self.producer[out] = reads
            layers = self.layers_of(node, inputs, data_in)
            for index, layer in enumerate(layers):
                self.layers.append(dataclasses.replace(layer, reads=reads if index == 0 else (self.layers[-1].name,)))
            if layers:
                for out in node.output:
                    self.producer[out] = (self.layers[-1].name,)

    def layers_of(self, node, inputs, data_in) -> list[Layer]:
        op = node.op_type
        attrs = _attrs(node)
        out = node.output[0]
        constant_operand = len(data_in) < len(inputs)
        if op in _VIEWS or (op == "Gather" and inputs[0] in self.data):
            return []
        if op in _SCALING and (constant_operand or len(data_in) == 1):
            if op == "Add":
                self.fold_bias(data_in[0], inputs)
            return []
        name = self.name_for(node)
        if op in _ONE_PASS:
            return [Layer(name, _ONE_PASS[op], self.per_sample(out))]
        if op in _ACTIVATIONS:
            return [Layer(name, "activation", self.per_sample(out), function=_ACTIVATIONS[op])]
        if op in ("Add", "Sub", "Mul", "Div", "Sum"):
            return [Layer(name, "eltwise", self.per_sample(out), operands=len(data_in))]
        if op == "Concat":
            return [Layer(name, "concat", self.per_sample(out))]
        if op == "BatchNormalization":
            return [Layer(name, "bn", self.per_sample(out))]
        if op == "Conv":
            return [self.conv(node, attrs, inputs, name)]
        if op in ("MaxPool", "AveragePool"):
            return [self.pool(attrs, inputs[0], name, "max" if op == "MaxPool" else "avg")]
        if op == "GlobalAveragePool":
            c, h, w = self.per_sample(inputs[0])
            return [Layer(name, "pool", (c, h, w, (h, w), (h, w), (0, 0)), mode="avg")]
        if op == "Gemm":
            k, n = self.shape(inputs[1])[::-1] if attrs.get("transB") else self.shape(inputs[1])
            tokens = max(1, math.prod(self.shape(inputs[0])[:-1]) // self.batch)
            return [Layer(name, "fc", (k, n), bias=len(inputs) > 2, tokens=tokens)]
        if op == "MatMul":
            return [self.matmul(inputs, data_in, name)]
        if op == "Gather":                          # a constant table indexed by the data
            vocab, dim = self.shape(inputs[0])[:2]
            tokens = max(1, math.prod(self.shape(inputs[1])) // self.batch)
            return [Layer(name, "embedding", (vocab, dim, tokens))]
        if op in ("LSTM", "GRU", "RNN"):
            return [self.recurrent(node, attrs, inputs, name)]
        raise ValueError(f"cannot import ONNX node {node.name or op} ({op}): no dlcb layer kind for it")

    def fold_bias(self, value: str, inputs: list) -> None:
        """A constant added to a MatMul's output right after it is that fully-connected layer's bias."""
        layer = self.layers[-1] if self.layers else None
        constant = [i for i in inputs if i not in self.data]
        if (layer is not None and self.producer.get(value) == (layer.name,) and layer.kind == "fc"
                and not layer.bias and constant and math.prod(self.shape(constant[0])) == layer.shape[1]):
            self.layers[-1] = dataclasses.replace(layer, bias=True)

    def conv(self, node, attrs, inputs, name) -> Layer:
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise ValueError(f"cannot import ONNX node {node.name}: a dilated convolution; the format has no dilation")
        c, h, w = self.per_sample(inputs[0])
        k, _, r, s = self.shape(inputs[1])
        pads = attrs.get("pads", [0, 0, 0, 0])
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise ValueError(f"cannot import ONNX node {node.name}: asymmetric padding {pads}")
        return Layer(name, "conv", (c, h, w, k, r, s, (pads[0], pads[1]), tuple(attrs.get("strides", [1, 1])),
                                    attrs.get("group", 1)), bias=len(inputs) > 2)

    def pool(self, attrs, value, name, mode) -> Layer:
        c, h, w = self.per_sample(value)
        pads = attrs.get("pads", [0, 0, 0, 0])
        window = tuple(attrs["kernel_shape"])
        return Layer(name, "pool", (c, h, w, window, tuple(attrs.get("strides", window)), (pads[0], pads[1])),
                     mode=mode)

    def matmul(self, inputs, data_in, name) -> Layer:
        a, b = self.shape(inputs[0]), self.shape(inputs[1])
        if len(data_in) == 1:                       # activations by a weight: a fully-connected layer
            k, n = b[-2], b[-1]
            tokens = max(1, math.prod(a[:-1]) // self.batch)
            return Layer(name, "fc", (k, n), bias=False, tokens=tokens)
        m, k, n = a[-2], a[-1], b[-1]
        heads = max(1, math.prod(a[:-2]) // self.batch)
        return Layer(name, "matmul", (m, n, k), heads=heads)

    def recurrent(self, node, attrs, inputs, name) -> Layer:
        directions, gates_hidden, input_size = self.shape(inputs[1])
        hidden = attrs["hidden_size"]
        x = self.shape(inputs[0])
        timesteps = x[1] if attrs.get("layout", 0) else x[0]
        cell = {"LSTM": "lstm", "GRU": "gru", "RNN": "vanilla"}[node.op_type]
        return Layer(name, "rnn", (input_size, hidden, timesteps), count=directions, cell=cell,
                     bias=len(inputs) > 3 and bool(inputs[3]))


def from_onnx(path, *, name: str | None = None) -> Model:
    """The dlcb Model of an ONNX file. ValueError naming the node for what the format cannot say."""
    try:
        import onnx
    except ImportError:
        raise ValueError("importing an ONNX model needs the onnx package: pip install onnx") from None
    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such ONNX file: {path}") from None
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and friends for a bad file
        raise ValueError(f"{path} is not a readable ONNX model: {exc}") from None
    weights = {init.name for init in proto.graph.initializer}
    data = [v for v in proto.graph.input if v.name not in weights]
    if data and data[0].type.tensor_type.shape.dim:
        batch = data[0].type.tensor_type.shape.dim[0]
        if not batch.HasField("dim_value"):
            batch.dim_value = 1                 # a symbolic batch: size the graph for one sample
    proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    importer = _Importer(proto.graph)
    importer.run()
    if not importer.layers:
        raise ValueError(f"{path} has no node that does work on its input")
    input_shape = importer.per_sample(importer.input)
    source = f"imported from ONNX ({path.name}, opset {max((o.version for o in proto.opset_import), default=0)})"
    return Model(name or path.stem, tuple(importer.layers), input_shape, source)
