"""User models as data: a dict (JSON, or YAML when PyYAML is installed) of the same form as the
built-in models.

    {"name": "MyNet", "input_shape": [3, 32, 32], "source": "where the shapes come from",
     "layers": [{"name": "conv1", "kind": "conv", "c": 3, "h": 32, "w": 32, "k": 16, "r": 3,
                 "pad": 1, "count": 1},
                {"name": "relu1", "kind": "relu", "tensor": [16, 32, 32]}, ...]}

A layer names its kind's shape fields (layers.SHAPE_FIELDS; pad/stride/window an int or a
[height, width] pair; conv's s defaults to r, groups to 1, pad to 0, stride to 1; pool's stride
to its window) and may give its kind's options (layers.OPTIONS, e.g. "bias", "tokens", "cell") and
"reads", the graph's edges: the layers (or "input") it reads, as the importers write them.
"""

from __future__ import annotations

import json
from pathlib import Path

from .layers import OPTIONS, PAIR_FIELDS, SHAPE_FIELDS, Layer, Model

# Shape fields a file may leave out, and how their value follows from the others.
_DEFAULTS = {
    "conv": {"s": lambda f: f.get("r"), "pad": lambda f: 0, "stride": lambda f: 1, "groups": lambda f: 1},
    "pool": {"stride": lambda f: f.get("window"), "pad": lambda f: 0},
}
_MODEL_KEYS = ("name", "input_shape", "source", "layers")


def layer_to_dict(layer: Layer) -> dict:
    out = {"name": layer.name, "kind": layer.kind}
    for field, value in layer.dims.items():
        out[field] = list(value) if isinstance(value, tuple) else value
    for option in OPTIONS.get(layer.kind, ()):
        out[option] = getattr(layer, option)
    out["count"] = layer.count
    if layer.reads:
        out["reads"] = list(layer.reads)
    return out


def model_to_dict(model: Model) -> dict:
    if not isinstance(model, Model):
        raise TypeError(f"model must be a Model, got {type(model).__name__}")
    return {"name": model.name, "input_shape": list(model.input_shape), "source": model.source,
            "layers": [layer_to_dict(layer) for layer in model.layers]}


def layer_from_dict(entry: dict, position: int) -> Layer:
    if not isinstance(entry, dict):
        raise ValueError(f"layer #{position}: expected a mapping, got {type(entry).__name__}")
    name = entry.get("name")
    where = f"layer {name!r}" if isinstance(name, str) and name else f"layer #{position}"
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: field 'name' must be a non-empty string")
    kind = entry.get("kind")
    if kind not in SHAPE_FIELDS:
        raise ValueError(f"{where}: field 'kind' must be one of {', '.join(SHAPE_FIELDS)}; got {kind!r}")
    fields, options = SHAPE_FIELDS[kind], OPTIONS.get(kind, ())
    unknown = set(entry) - set(fields) - set(options) - {"name", "kind", "count", "reads"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} for a {kind} layer "
                         f"(shape fields: {', '.join(fields)}; options: {', '.join(options) or 'none'})")
    shape = []
    for field in fields:
        if field in entry:
            value = entry[field]
        elif field in _DEFAULTS.get(kind, {}):
            value = _DEFAULTS[kind][field](entry)
        else:
            raise ValueError(f"{where}: missing field {field!r} (a {kind} layer needs {', '.join(fields)})")
        if isinstance(value, list) and (field in PAIR_FIELDS or field == "tensor"):
            value = tuple(value)
        shape.append(value)
    shape = shape[0] if fields == ("tensor",) else tuple(shape)
    kwargs = {option: entry[option] for option in options if option in entry}
    if "reads" in entry:
        if not isinstance(entry["reads"], list):
            raise ValueError(f"{where}: field 'reads' must be a list of layer names")
        kwargs["reads"] = tuple(entry["reads"])
    try:
        return Layer(name, kind, shape, entry.get("count", 1), **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def model_from_dict(data: dict) -> Model:
    """The Model a dict describes; ValueError naming the layer and the field for a bad one."""
    if not isinstance(data, dict):
        raise ValueError(f"a model must be a mapping, got {type(data).__name__}")
    unknown = set(data) - set(_MODEL_KEYS)
    if unknown:
        raise ValueError(f"model: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(_MODEL_KEYS)}")
    for key in ("name", "input_shape", "layers"):
        if key not in data:
            raise ValueError(f"model: missing field {key!r}")
    if not isinstance(data["layers"], list) or not data["layers"]:
        raise ValueError("model: field 'layers' must be a non-empty list")
    layers = tuple(layer_from_dict(entry, position) for position, entry in enumerate(data["layers"], start=1))
    input_shape = data["input_shape"]
    if not isinstance(input_shape, list):
        raise ValueError(f"model: field 'input_shape' must be a list of ints, got {input_shape!r}")
    try:
        return Model(data["name"], layers, tuple(input_shape), data.get("source", ""))
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def load_model(path) -> Model:
    """A model from a .json file, or a .yaml/.yml one when PyYAML is installed."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ValueError(f"a model file must end in .json, .yaml or .yml, got {str(path)!r}")
    text = path.read_text()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); "
                             "or write the model as JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from None
    try:
        return model_from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def save_model(model: Model, path) -> None:
    """Write a model as JSON (the format load_model reads)."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ValueError(f"save_model writes JSON: the path must end in .json, got {str(path)!r}")
    path.write_text(json.dumps(model_to_dict(model), indent=1) + "\n")
