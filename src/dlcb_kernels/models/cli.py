"""`dlcb models`: the model zoo's parameter and MAC counts beside the cookbook's figures, or one
model's layers."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from . import COOKBOOK, MODELS, get_model, model_to_dict, save_model
from .layers import Layer, Model, with_loss

CHECK = "\u2713"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "models", help="list the reference models: parameters, forward GMACs, the cookbook's figures",
        description="Parameters in the cookbook convention (every Caffe blob, BatchNorm statistics included) "
                    "and trainable only, forward GMACs per sample (kernel layers: conv, fully-connected, RNN, "
                    "attention GEMMs), each beside the Deep Learning Cookbook's figure: a check mark when they "
                    "agree (GMACs to the cookbook's digits), else the difference.")
    parser.add_argument("--model", metavar="NAME|FILE", default=None,
                        help="list one model's layers instead (kind, shape, count, parameters, MACs): a reference "
                             "model's name (case-insensitive) or a .json/.yaml model file")
    parser.add_argument("--torch", metavar="MODULE:NAME", default=None,
                        help="import a PyTorch model instead: NAME in the importable Python module MODULE, an "
                             "nn.Module or a callable returning one (e.g. mynets:make_resnet18), traced with "
                             "torch.fx on an input of --input's shape")
    parser.add_argument("--input", metavar="SHAPE[:int]", default=None,
                        help="with --torch: the example input, batch first, e.g. 1x3x224x224, or 1x128:int for "
                             "token ids")
    parser.add_argument("--loss", action="store_true",
                        help="add a softmax cross-entropy loss on the model's output (replacing a final softmax), "
                             "as a training step computes it; inference skips it")
    parser.add_argument("--save", metavar="FILE.json", default=None,
                        help="write the model (imported or named) as a model file, which dlcb bench/predict/"
                             "validate take wherever a model name goes")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def run(args) -> int:
    if args.torch is not None:
        model = import_torch(args.torch, args.input)
    elif args.input is not None:
        raise ValueError("--input is for --torch")
    else:
        model = get_model(args.model) if args.model is not None else None
    if args.loss and model is None:
        raise ValueError("--loss needs a model: --model NAME|FILE or --torch MODULE:NAME")
    if model is not None:
        if args.loss:
            model = with_loss(model)
        if args.save:
            save_model(model, args.save)
        print(json.dumps(_model_detail(model), indent=1) if args.json else format_layers(model))
        if args.save:
            print(f"model file: {args.save}", file=sys.stderr)
        return 0
    if args.save:
        raise ValueError("--save needs a model: --model NAME|FILE or --torch MODULE:NAME")
    rows = [_summary(model) for model in MODELS.values()]
    print(json.dumps(rows, indent=1) if args.json else format_summary(rows))
    return 0


# Summary of every model ------------------------------------------------------------------------

def _summary(model: Model) -> dict:
    return {"model": model.name, "params_cookbook": model.params("cookbook"),
            "params_trainable": model.params("trainable"), "gmacs": model.macs_per_sample() / 1e9,
            "cookbook": COOKBOOK.get(model.name), "source": model.source}


def _count_check(ours: int, theirs: int | None) -> str:
    if theirs is None:
        return ""
    return CHECK if ours == theirs else f"{ours - theirs:+,}"


def _gmacs_check(ours: float, theirs: float | None) -> str:
    if theirs is None:
        return ""
    digits = len(repr(theirs).split(".")[1])
    return CHECK if round(ours, digits) == theirs else f"cookbook {theirs}"


def format_summary(rows: list[dict]) -> str:
    header = ("model", "params (cookbook)", "cookbook", "trainable", "cookbook", "GMACs", "cookbook")
    lines = []
    for row in rows:
        book = row["cookbook"] or {}
        lines.append((row["model"],
                      f"{row['params_cookbook']:,}", _count_check(row["params_cookbook"], book.get("params")),
                      f"{row['params_trainable']:,}", _count_check(row["params_trainable"], book.get("trainable")),
                      f"{row['gmacs']:.4g}", _gmacs_check(row["gmacs"], book.get("gmacs"))))
    widths = [max(len(line[i]) for line in (header, *lines)) for i in range(len(header))]
    out = ["  ".join(cell.ljust(width) if i in (0, 2, 4, 6) else cell.rjust(width)
                     for i, (cell, width) in enumerate(zip(line, widths))).rstrip() for line in (header, *lines)]
    out.append("")
    out.append("cookbook: ../shared/CONTEXT.md's table (params in the cookbook convention: every Caffe blob, "
               "BatchNorm mean/variance and its moving-average scalar, Scale gamma/beta; trainable where it gives "
               "it); blank: no cookbook figure.")
    return "\n".join(out)


# One model's layers ----------------------------------------------------------------------------

def describe_shape(layer: Layer) -> str:
    d = layer.dims
    if layer.kind == "conv":
        text = (f"{d['c']}x{d['h']}x{d['w']} -> {d['k']} {d['r']}x{d['s']} "
                f"stride {d['stride'][0]},{d['stride'][1]} pad {d['pad'][0]},{d['pad'][1]}")
        return text + (f" groups {d['groups']}" if d["groups"] > 1 else "") + ("" if layer.bias else " no bias")
    if layer.kind == "fc":
        return f"{d['inputs']} -> {d['outputs']}" + (f" over {layer.tokens} tokens" if layer.tokens > 1 else "")
    if layer.kind == "rnn":
        return f"{layer.cell} {d['input_size']} -> {d['hidden']} over {d['timesteps']} steps"
    if layer.kind == "matmul":
        b_rows, b_cols = (d["n"], d["k"]) if layer.trans_b else (d["k"], d["n"])
        return (f"{layer.heads} x ({d['m']}x{d['k']}) @ ({b_rows}x{b_cols})" + ("^T" if layer.trans_b else ""))
    if layer.kind == "pool":
        (wh, ww), (sh, sw) = d["window"], d["stride"]
        return f"{layer.mode} {d['c']}x{d['h']}x{d['w']} window {wh}x{ww} stride {sh},{sw}"
    if layer.kind == "embedding":
        return f"{d['vocab']}x{d['dim']} table, {d['tokens']} tokens"
    text = "x".join(str(dim) for dim in layer.shape)
    return text + (f" x {layer.operands} operands" if layer.kind == "eltwise" else "")


def _model_detail(model: Model) -> dict:
    detail = model_to_dict(model)
    for entry, layer in zip(detail["layers"], model.layers):
        entry["params_cookbook"] = layer.params("cookbook") * layer.count
        entry["params_trainable"] = layer.params("trainable") * layer.count
        entry["macs_per_sample"] = layer.macs_per_sample() * layer.count
    detail["params_cookbook"] = model.params("cookbook")
    detail["params_trainable"] = model.params("trainable")
    detail["macs_per_sample"] = model.macs_per_sample()
    return detail


def format_layers(model: Model) -> str:
    """One line per layer; a model with its graph's edges (imported) also says what each layer reads."""
    edges = any(layer.reads for layer in model.layers)
    header = ("layer", "kind", "shape (per sample)", "count", "params", "trainable", "MACs") + \
        (("reads",) if edges else ())
    lines = [(layer.name, layer.kind, describe_shape(layer), str(layer.count),
              f"{layer.params('cookbook') * layer.count:,}", f"{layer.params('trainable') * layer.count:,}",
              f"{layer.macs_per_sample() * layer.count:,}") + ((", ".join(layer.reads),) if edges else ())
             for layer in model.layers]
    lines.append(("total", "", "", str(sum(layer.count for layer in model.layers)), f"{model.params('cookbook'):,}",
                  f"{model.params('trainable'):,}", f"{model.macs_per_sample():,}") + (("",) if edges else ()))
    widths = [max(len(line[i]) for line in (header, *lines)) for i in range(len(header))]
    title = f"{model.name}: input {'x'.join(map(str, model.input_shape))}"
    out = [title + (f"; {model.source}" if model.source else ""),
           "params and MACs are of all the layer's occurrences (count); MACs are per sample, forward"]
    out += ["  ".join(cell.ljust(width) if i < 3 or i == 7 else cell.rjust(width)
                      for i, (cell, width) in enumerate(zip(line, widths))).rstrip() for line in (header, *lines)]
    return "\n".join(out)


# Importing from PyTorch ------------------------------------------------------------------------

def import_torch(spec: str, input_spec: str | None) -> Model:
    """The model that MODULE:NAME names (an nn.Module, or a callable returning one), imported on an
    example input of input_spec's shape (see from_torch)."""
    from .from_torch import from_torch

    net, example, name = torch_module_and_input(spec, input_spec)
    return from_torch(net, example, name=name)


def torch_module_and_input(spec: str, input_spec: str | None):
    """(the nn.Module MODULE:NAME names, an example input of input_spec's shape, NAME)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"--torch must be MODULE:NAME, got {spec!r}")
    if input_spec is None:
        raise ValueError("--torch needs --input, the example input's shape (e.g. 1x3x224x224)")
    try:
        import torch
    except ImportError:
        raise ValueError("--torch needs PyTorch: pip install torch") from None
    sys.path.insert(0, ".")  # a module beside the user, as `python -c "import MODULE"` would find it
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--torch {spec}: {exc}") from None
    finally:
        sys.path.remove(".")
    net = found if isinstance(found, torch.nn.Module) else found() if callable(found) else None
    if not isinstance(net, torch.nn.Module):
        raise ValueError(f"--torch {spec} is not an nn.Module or a callable returning one")
    dims, _, kind = input_spec.partition(":")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        raise ValueError(f"--input must be a shape like 1x3x224x224 or 1x128:int, got {input_spec!r}") from None
    if kind not in ("", "int") or any(d < 1 for d in shape):
        raise ValueError(f"--input must be a shape like 1x3x224x224 or 1x128:int, got {input_spec!r}")
    example = torch.zeros(shape, dtype=torch.long) if kind == "int" else torch.randn(shape)
    return net, example, attribute
