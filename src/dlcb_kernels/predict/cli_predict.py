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
    parser.add_argument("--batch", type=positive_int, default=64, help="samples per step (default: 64)")
    parser.add_argument("--mode", choices=("train", "infer"), default="train",
                        help="train: forward, backward and optimizer update; infer: forward only (default: train)")
    parser.add_argument("--impl", default="best",
                        help="best (per problem the fastest implementation), ours, vendor, or one implementation "
                             "by name or variant, e.g. numpy (default: best)")
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
    from ..table import load
    from .model_time import format_prediction, predict_model, prediction_to_dict

    model = get_model(args.model)
    doc = load(args.table)
    prediction = predict_model(model, doc, batch=args.batch, mode=args.mode, impl=args.impl,
                               device_id=args.device, dtype=args.dtype)
    if args.json:
        json.dump(prediction_to_dict(prediction), sys.stdout, indent=1)
        print()
    else:
        print(format_prediction(prediction, top=args.top))
    return 0
