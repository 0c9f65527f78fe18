"""`dlcb scale`: data-parallel scaling of a model's training step predicted from a throughput table."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..argtypes import positive_float, positive_int_list
from .scaling import (
    ALGORITHMS,
    INTERCONNECTS,
    SCALINGS,
    as_profile,
    data_parallel,
    get_interconnect,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    scale = subparsers.add_parser(
        "scale", help="predict data-parallel scaling of a model's training step over many workers",
        description="Predicts one worker's training step from a throughput table, then synchronous "
                    "data parallelism over p workers: gradient all-reduce on an α-β interconnect model, "
                    "overlapped with the backward layer by layer unless --no-overlap.")
    scale.add_argument("--model", required=True, metavar="NAME|FILE",
                       help="a reference model (e.g. vgg16; see `dlcb models`) or a model file (.json/.yaml)")
    scale.add_argument("--table", required=True, type=Path, help="throughput table (JSON) to predict from")
    scale.add_argument("--workers", type=positive_int_list, default=[1, 2, 4, 8], metavar="P,...",
                       help="worker (GPU) counts (default: 1,2,4,8)")
    scale.add_argument("--batch", type=positive_int_list, default=[16, 32, 64, 128], metavar="N,...",
                       help="batch sizes: per worker with --scaling weak, global with strong "
                            "(default: 16,32,64,128)")
    scale.add_argument("--interconnect", default="pcie3", metavar="NAME|measured",
                       help=f"link between workers: a preset ({', '.join(INTERCONNECTS)}), or 'measured' "
                            "(or measured:mpi, measured:nccl) for the all-reduce α/β that `dlcb bench comm` "
                            "fitted into the table's communication section (default: pcie3)")
    scale.add_argument("--scaling", choices=SCALINGS, default="weak",
                       help="weak: fixed batch per worker; strong: fixed global batch split over the "
                            "workers (default: weak)")
    scale.add_argument("--no-overlap", action="store_true",
                       help="all-reduce all gradients after the backward instead of layer by layer during it")
    scale.add_argument("--algorithm", choices=ALGORITHMS, default="ring",
                       help="all-reduce: ring, binomial tree, or parameter server (default: ring)")
    scale.add_argument("--mode", choices=("train",), default="train",
                       help="the step that is scaled: a training step (data parallelism all-reduces its "
                            "gradients)")
    scale.add_argument("--impl", choices=("best", "ours", "vendor"), default="best",
                       help="which implementations' records predict the kernels (default: best)")
    scale.add_argument("--device", default=None, metavar="ID",
                       help="the table's device to predict (default: the table's only device)")
    scale.add_argument("--gamma", type=positive_float, default=None, metavar="TFLOPS",
                       help="predict another device of this FP32 peak: every time is scaled by the table "
                            "device's theoretical peak over it (assumes time scales with peak, memory-bound "
                            "work included), e.g. --gamma 4.29 for a K40")
    scale.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                       help="also write batch time against workers, one line per batch (needs matplotlib: "
                            "dlcb-kernels[plot]; without it the table is printed and the exit status is 1)")
    scale.add_argument("--json", action="store_true", help="print JSON instead of the text table")
    return scale


def _device(table_doc: dict, device_id: str | None) -> dict:
    devices = table_doc.get("devices", [])
    if device_id is not None:
        for device in devices:
            if device.get("id") == device_id:
                return device
        raise ValueError(f"--device {device_id!r} is not in the table; it has "
                         f"{', '.join(d.get('id', '?') for d in devices) or 'no devices'}")
    if len(devices) != 1:
        raise ValueError(f"the table has {len(devices)} devices: name one with --device")
    return devices[0]


def _prediction_fn(model, table_doc: dict, args):
    from . import ThroughputModel, predict_model

    # One kernel model (its fits) for every batch the scaling asks about.
    kernels = ThroughputModel(table_doc, device_id=args.device, impl=args.impl)
    return lambda batch: predict_model(model, kernels, batch=batch, mode=args.mode)


def format_rows(rows) -> str:
    lines = [f"{'workers':>7} {'batch':>6} {'global':>7} {'batch time ms':>13} {'comm ms':>8} "
             f"{'exposed ms':>10} {'samples/s':>10} {'speedup':>8} {'efficiency':>10}"]
    for row in rows:
        lines.append(f"{row.workers:>7} {row.batch:>6} {row.global_batch:>7} {row.step_s * 1e3:>13.3f} "
                     f"{row.allreduce_s * 1e3:>8.3f} {row.exposed_comm_s * 1e3:>10.3f} "
                     f"{row.throughput:>10.1f} {row.speedup:>8.2f} {row.efficiency:>9.1%}")
    return "\n".join(lines)


def _interconnect_json(ic) -> dict:
    """The link as JSON (which has no infinity: the last regime's bound is null)."""
    data = dataclasses.asdict(ic)
    data["regimes"] = [[None if up_to == float("inf") else up_to, alpha, beta] for up_to, alpha, beta in ic.regimes]
    return data


def run(args) -> int:
    from ..models import get_model
    from ..table import load

    model = get_model(args.model)
    table_doc = load(args.table)
    ic = get_interconnect(args.interconnect, table_doc)
    prediction_fn = _prediction_fn(model, table_doc, args)
    factor = 1.0
    gamma_note = None
    if args.gamma is not None:
        from ..devices import peak_for

        device = _device(table_doc, args.device)
        peak_gflops, label = peak_for(device, "fp32", basis="theoretical")
        factor = peak_gflops / (args.gamma * 1e3)
        gamma_note = (f"times scaled ×{factor:.3g} from the table device's {label} to γ = {args.gamma:g} "
                      f"TFLOPS (assumption: time scales with peak)")
        unscaled = prediction_fn

        def prediction_fn(batch):
            return as_profile(unscaled(batch)).scaled(factor)

    rows = data_parallel(prediction_fn, args.workers, args.batch, ic, scaling=args.scaling,
                         overlap=not args.no_overlap, algorithm=args.algorithm)
    settings = {"model": model.name, "table": str(args.table), "scaling": args.scaling,
                "overlap": not args.no_overlap, "algorithm": args.algorithm, "mode": args.mode,
                "impl": args.impl, "interconnect": _interconnect_json(ic), "gamma_tflops": args.gamma,
                "compute_scale": factor}
    if args.json:
        print(json.dumps({"settings": settings,
                          "rows": [dict(dataclasses.asdict(row), exposed_comm_s=row.exposed_comm_s)
                                   for row in rows]}, indent=2))
    else:
        print(f"{model.name}: {args.scaling} scaling, {args.algorithm} all-reduce "
              f"{'overlapped with the backward' if not args.no_overlap else 'after the backward'}, "
              f"{ic.name} (α = {ic.alpha_s * 1e6:g} µs, β = {ic.beta_bytes_per_s / 1e9:g} GB/s per direction)")
        print(f"  {ic.source}")
        for up_to, alpha, beta in ic.regimes:
            print(f"    messages up to {'∞' if up_to == float('inf') else f'{up_to:,.0f} B'}: "
                  f"α = {alpha * 1e6:.3g} µs, β = {beta / 1e9:.3g} GB/s")
        if gamma_note:
            print(f"  {gamma_note}")
        print(format_rows(rows))
    if args.plot is not None:
        from .plot import plot_scaling

        title = (f"{model.name}, {args.scaling} scaling, {ic.name}, {args.algorithm}"
                 f"{'' if not args.no_overlap else ', no overlap'}")
        try:
            path = plot_scaling(rows, args.plot, title, scaling=args.scaling)
        except ModuleNotFoundError as exc:
            print(f"dlcb scale: no plot written: {exc}", file=sys.stderr)
            return 1
        print(f"plot written to {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
