"""The model zoo: reference models as layer descriptions, their parameter and MAC counts, and
user models in the same format (Python or a JSON/YAML file).

    from dlcb_kernels import models
    m = models.get_model("resnet50")            # or a path to a .json/.yaml model file
    m = models.from_torch(net, torch.randn(1, 3, 224, 224))   # a torch.nn.Module, via torch.fx
    m = models.get_model("my.onnx")                             # an ONNX file (from_onnx)
    m.params("cookbook"), m.params("trainable"), m.macs_per_sample()
    for layer in m.layers: layer.kernel_problems(64, "fwd"), layer.memory_bytes(64, "fwd")
"""

from __future__ import annotations

from pathlib import Path

from .from_onnx import from_onnx
from .from_torch import from_torch
from .io import layer_from_dict, layer_to_dict, load_model, model_from_dict, model_to_dict, save_model
from .layers import (
    CONVENTIONS,
    KERNEL_KINDS,
    KINDS,
    OPTIONS,
    PASSES,
    SHAPE_FIELDS,
    TENSOR_KINDS,
    Layer,
    Model,
    activation,
    bn,
    concat,
    conv,
    dropout,
    eltwise,
    embedding,
    fc,
    gelu,
    layernorm,
    loss,
    lrn,
    matmul,
    pool,
    relu,
    rnn,
    softmax,
    tanh,
    with_loss,
)
from .zoo import MODELS

# ../shared/CONTEXT.md's reference table: parameters in the cookbook convention, forward GMACs
# (the precise figure it gives in parentheses), and the trainable count where it gives one.
COOKBOOK: dict[str, dict] = {
    "AlexNet": {"params": 60_965_224, "gmacs": 0.724, "trainable": None},
    "AlexNetOWT": {"params": 61_100_840, "gmacs": 0.714, "trainable": None},
    "GoogLeNet": {"params": 6_998_552, "gmacs": 1.583, "trainable": None},
    "VGG16": {"params": 138_357_544, "gmacs": 15.470, "trainable": None},
    "VGG19": {"params": 143_667_240, "gmacs": 19.632, "trainable": None},
    "ResNet50": {"params": 25_610_269, "gmacs": 3.858, "trainable": 25_557_096},
    "ResNet101": {"params": 44_654_608, "gmacs": 7.570, "trainable": 44_549_160},
    "ResNet152": {"params": 60_344_387, "gmacs": 11.282, "trainable": 60_192_808},
    "EnglishAcoustic": {"params": 34_678_784, "gmacs": 0.0347, "trainable": None},
    "TextCNN": {"params": 151_690, "gmacs": 0.0087, "trainable": None},
    "DeepMNIST": {"params": 11_972_510, "gmacs": 0.012, "trainable": None},
}

_BY_LOWER_NAME = {name.lower(): model for name, model in MODELS.items()}


def get_model(name_or_path) -> Model:
    """A reference model by name (case-insensitive: "resnet50"), or a user model from a path to
    a .json/.yaml/.yml model file or an .onnx file (imported, see from_onnx)."""
    if str(name_or_path).lower().endswith(".onnx"):
        return from_onnx(name_or_path)
    if isinstance(name_or_path, Path) or str(name_or_path).lower().endswith((".json", ".yaml", ".yml")):
        return load_model(name_or_path)
    if not isinstance(name_or_path, str):
        raise TypeError(f"name_or_path must be a model name or a path, got {type(name_or_path).__name__}")
    try:
        return _BY_LOWER_NAME[name_or_path.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name_or_path!r}; known: {', '.join(MODELS)} "
                         "(or give a path to a .json/.yaml model file)") from None


__all__ = [
    "CONVENTIONS",
    "COOKBOOK",
    "KERNEL_KINDS",
    "KINDS",
    "MODELS",
    "OPTIONS",
    "PASSES",
    "SHAPE_FIELDS",
    "TENSOR_KINDS",
    "Layer",
    "Model",
    "activation",
    "bn",
    "concat",
    "conv",
    "dropout",
    "eltwise",
    "embedding",
    "fc",
    "from_onnx",
    "from_torch",
    "gelu",
    "get_model",
    "layer_from_dict",
    "layer_to_dict",
    "layernorm",
    "load_model",
    "loss",
    "lrn",
    "matmul",
    "model_from_dict",
    "model_to_dict",
    "pool",
    "relu",
    "rnn",
    "save_model",
    "softmax",
    "tanh",
    "with_loss",
]
