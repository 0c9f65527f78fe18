"""`dlcb predict`: a model's step time and throughput from a throughput table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..argtypes import positive_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict", help="predict a model's step time and throughput from a throughput table",
        description="Lowers every layer of the model to kernel problems (forward, backward data, backward "
                    "weights) and memory traffic, and times each from the table: an exact record where the "
                    "table has the problem, else an efficiency model fitted to the table's records, else the "
                    "roofline. Prints the per-layer breakdown, the step time with its uncertainty and the "
                    "throughput.")
    parser.add_argument("--model", required=True, metavar="NAME|FILE",
                        help="a reference model (e.g. resnet50, vgg16, bert-base; `dlcb models` lists them) or "
                             "a model file (.json, or .yaml/.yml with PyYAML installed)")
    parser.add_argument("--table", required=True, type=Path, help="throughput table (JSON) of the device")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help="samples per step (default: the batch the table measured this model at, from "
                             "`dlcb bench --suite models --models NAME --batch N`)")
    parser.add_argument("--mode", choices=("train", "infer"), default="train",
                        help="train: forward, backward and optimizer update; infer: forward only (default: train)")
    parser.add_argument("--impl", default=None,
                        help="the runner whose step is predicted: torch (PyTorch's records) or ours (our kernels' "
                             "records); also vendor, one implementation by name or variant (numpy), or best (per "
                             "kernel the fastest of any: a mix no real runner executes). Default: torch where the "
                             "table has its records, else ours")
    parser.add_argument("--device", default=None, metavar="ID",
                        help="the table's device id (default: its first device)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                        help="data type of the model's kernels (default: float32)")
    parser.add_argument("--top", type=positive_int, default=15,
                        help="how many of the slowest layers to list (default: 15)")
    parser.add_argument("--json", action="store_true", help="print the full prediction as JSON")
    return parser


def run(args) -> int:
    from ..models import get_model
    from ..results import Table
    from ..table import load
    from .model_time import format_prediction, predict_model, prediction_to_dict

    model = get_model(args.model)
    doc = load(args.table)
    typed = Table.from_json(doc, str(args.table))
    batch = args.batch or table_batch(typed, model.name)
    impl = args.impl or default_runner(typed)
    if impl == "best":
        _warn("--impl best takes per kernel the fastest implementation of any library: a mix that no real runner "
              "executes; name a runner (torch, ours) to predict one")
    prediction = predict_model(model, doc, batch=batch, mode=args.mode, impl=impl,
                               device_id=args.device, dtype=args.dtype)
    estimated = estimated_share(prediction)
    if estimated > 0.0:
        _warn(f"{estimated:.0%} of the predicted step is estimated (a fitted efficiency model or the roofline), "
              f"not timed: the table has no records of those kernels of {model.name} at batch {batch} "
              f"({impl}); measure them with `dlcb bench --suite models --models {args.model} --batch {batch} "
              f"--mode {args.mode}`")
    if args.json:
        json.dump(prediction_to_dict(prediction), sys.stdout, indent=1)
        print()
    else:
        print(format_prediction(prediction, top=args.top))
    return 0


def _warn(text: str) -> None:
    print(f"dlcb predict: warning: {text}", file=sys.stderr, flush=True)


def table_batch(table, model_name: str) -> int:
    """The batch the table measured `model_name`'s layers at (its records' labels); ValueError
    naming --batch where it holds none or several."""
    batches = {b for r in table.records for entry in (r.label("layers") or [])
               if isinstance(entry, dict) and entry.get("model") == model_name
               for b in (r.label("batch") if isinstance(r.label("batch"), list) else [r.label("batch")])
               if isinstance(b, int)}
    if len(batches) == 1:
        return batches.pop()
    if not batches:
        raise ValueError(f"--batch is needed: the table holds no records of {model_name}'s layers to take the batch "
                         f"from (measure them with `dlcb bench --suite models --models {model_name} --batch N`)")
    raise ValueError(f"--batch is needed: the table measured {model_name} at batches "
                     f"{', '.join(map(str, sorted(batches)))}")


def default_runner(table) -> str:
    """torch where the table has PyTorch's records, else ours where it has ours, else its one
    implementation; ValueError naming --impl where it has several and neither."""
    variants = {r.variant for r in table.records if r.ok}
    if "torch" in variants:
        return "torch"
    if any(r.provider == "ours" and r.ok for r in table.records):
        return "ours"
    if len(variants) == 1:
        return variants.pop()
    raise ValueError(f"--impl is needed: the table has neither torch's nor our records, but "
                     f"{', '.join(sorted(variants)) or 'no ok records'}")


def estimated_share(prediction) -> float:
    """The share of the step time that comes from estimates (fitted or roofline), not records."""
    sources = prediction.source_seconds()
    step = prediction.step_seconds
    return (sources.get("fitted", 0.0) + sources.get("roofline", 0.0)) / step if step > 0 else 0.0
