"""`dlcb validate`: reference models run end to end here, against the predictor's figures.

The table should hold every kernel problem and memory-bound layer call of the chosen models at
the chosen batch sizes in every pass, for torch's and our implementations; build it with
    dlcb bench --suite models --models NAME|FILE,... --batch N --mode both --impl torch,ours -o FILE
(the same --models and --batch as the validation). Runners are checked before any model is
measured, and the summary is printed whatever happens (an interrupted run: of what it finished).
The runs use the C allocator the table was measured under (allocator_policy: `dlcb bench` runs
steady by default), so that neither side's times hold page faults the other's do not.
"""

from __future__ import annotations

import argparse
import json
import sys

from .._validate import require_threads
from ..argtypes import positive_int
from .validate import DEFAULT_BATCHES, IMPLS


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "validate", help="run reference models end to end here and compare with the predictor",
        description="Runs reference models end to end on this CPU (forward pass and training step, with "
                    "PyTorch when installed and with our own kernels), predicts the same from a throughput "
                    "table and prints predicted vs measured with the error per model, the summary against "
                    "the goals (mean |error| <= 10% over >= 6 models, none above 20%), and the held-out "
                    "per-kernel error (--leave-one-out: each model also predicted without its own "
                    "records). Models run as the sequence of their layers, each on an input of its "
                    "declared shape (layer-sequence execution). Build the table with `dlcb bench --suite models "
                    "--models ... --batch N --mode both --impl torch,ours` (same --models/--batch).")
    parser.add_argument("--table", required=True, metavar="FILE", help="throughput table (JSON) to predict from")
    parser.add_argument("--models", default=",".join(DEFAULT_BATCHES), metavar="NAME,...",
                        help=f"models to run, comma-separated (default: {','.join(DEFAULT_BATCHES)})")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help="one batch size for every model (default: per model: "
                             + ", ".join(f"{name} {batch}" for name, batch in DEFAULT_BATCHES.items()) + ")")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="threads for both runners (default: OpenMP's, i.e. OMP_NUM_THREADS or the cores)")
    parser.add_argument("--impl", default=",".join(IMPLS), metavar="torch,ours",
                        help="runners: torch (PyTorch CPU, predicted from the table's */torch records), ours "
                             "(our kernels, predicted from our records); default: torch,ours")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="timed runs per model and mode, after two warm-up runs; the median is reported (default 5)")
    parser.add_argument("--rounds", type=positive_int, default=1,
                        help="measure every model this many times, the models in turn (the whole list each "
                             "round), and pool the samples: steadier on a machine whose speed drifts over "
                             "minutes (default 1)")
    parser.add_argument("--torch", metavar="MODULE:NAME", default=None,
                        help="validate a PyTorch model instead, run end to end as its module runs (the graph): "
                             "NAME in the importable module MODULE, an nn.Module or a callable returning one; "
                             "predicted from the table's torch records of its import (`dlcb models --torch`)")
    parser.add_argument("--input", metavar="SHAPE[:int]", default=None,
                        help="with --torch: the input, batch first (the batch the step runs), e.g. 8x3x224x224 or "
                             "8x128:int")
    parser.add_argument("--loss", action="store_true",
                        help="with --torch: the training step computes a softmax cross-entropy loss of the output "
                             "(fixed random labels), and the prediction charges it (dlcb models --loss)")
    parser.add_argument("--first-touch", choices=("now", "table"), default="now",
                        help="now (default): probe what a fresh page of memory costs before and after each "
                             "model's runs and move the exact records, which say how many pages a call faulted "
                             "and at what cost, to it (on a VM that cost moves several times within an hour); "
                             "table: the records' times as measured")
    parser.add_argument("--allocator", choices=("table", "steady", "system"), default="table",
                        help="the C allocator the runs use: table (default) the state the table was measured "
                             "under (environment.allocator; tables without it: system), steady (freed memory "
                             "kept and reused: no page faults after the warm-up; the command restarts itself "
                             "with glibc tunables), or system (the C library as the environment set it, page "
                             "faults included; the rows count them). See `dlcb bench --allocator`")
    parser.add_argument("--leave-one-out", action="store_true",
                        help="also predict each model from the table without its own records (every kernel "
                             "problem and memory-bound call it uses, as for a model never measured) and "
                             "summarize those errors and how often the stated uncertainty covers them")
    parser.add_argument("--json", action="store_true", help="print rows, summary and held-out figures as JSON")
    return parser


def run(args) -> int:
    from .. import table as table_module
    from .validate import format_rows, parse_batches, resolve_models, summarize_rows, validate

    if args.torch is not None:
        return _run_module(args)
    if args.input is not None or args.loss:
        raise ValueError(f"{'--input' if args.input is not None else '--loss'} is for --torch (a model file "
                         "takes its loss from `dlcb models --loss --save`)")
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    if not names:
        raise ValueError("--models must name at least one model")
    impls = tuple(dict.fromkeys(i.strip() for i in args.impl.split(",") if i.strip()))
    unknown = [i for i in impls if i not in IMPLS]
    if unknown or not impls:
        raise ValueError(f"--impl must name {' and/or '.join(IMPLS)}, got {args.impl!r}")
    doc = table_module.load(args.table)
    models = resolve_models(names)
    threads = require_threads(args.threads)
    batches = parse_batches(models, args.batch)
    impls = usable_runners(impls, doc, names, args.batch)   # before anything is measured
    allocator = _allocator(args, doc)
    print(f"dlcb validate: {len(models)} models, {', '.join(impls)}, {threads} threads, table {args.table}, "
          f"allocator {allocator['state']}", file=sys.stderr, flush=True)
    rows: list = []
    interrupted = False
    try:
        validate(doc, models, batches, threads, impls, repeats=args.repeats, progress=sys.stderr, rows_out=rows,
                 leave_one_out=args.leave_one_out, first_touch=args.first_touch, rounds=args.rounds)
    except KeyboardInterrupt:
        interrupted = True
        print("dlcb validate: interrupted; the summary covers the models measured so far", file=sys.stderr)
    summary = summarize_rows(rows)
    held_out = {impl: _held_out(doc, impl) for impl in impls}
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary, "held_out": held_out, "interrupted": interrupted,
                          "allocator": allocator}, indent=1))
    else:
        print(format_rows(rows, summary, held_out))
    return 130 if interrupted else 0


def usable_runners(impls: tuple, doc: dict, names: list, batch) -> tuple:
    """The runners that can run here and be predicted from the table, checked before any model
    is measured: a runner whose library is missing or whose records the table lacks is dropped
    with a note, and none left is an error."""
    from ..layer_runners import torch_available
    from .kernel_model import ThroughputModel

    usable = []
    for impl in impls:
        if impl == "torch" and not torch_available():
            print("dlcb validate: torch is not installed: its runner is skipped (pip install torch)",
                  file=sys.stderr)
            continue
        try:
            ThroughputModel(doc, impl=impl)
        except ValueError as exc:
            print(f"dlcb validate: the table cannot predict the {impl} runner ({exc}); skipped", file=sys.stderr)
            continue
        usable.append(impl)
    if not usable:
        batch_text = f" --batch {batch}" if batch else ""
        raise ValueError(f"no runner of {', '.join(impls)} can be validated here (see above); a table for them: "
                         f"`dlcb bench --suite models --models {','.join(names)}{batch_text} --mode both "
                         f"--impl {','.join(impls)} -o TABLE`")
    return tuple(usable)


def _allocator(args, doc: dict) -> dict:
    """The C allocator's state for the runs (restarting the command under the chosen mode where
    needed, before anything is measured), with a warning where it differs from the table's:
    page faults a call then takes in one and not the other."""
    from .. import allocator_policy

    table_state = allocator_policy.table_state(doc)
    mode = table_state if args.allocator == "table" else args.allocator
    why = allocator_policy.apply(mode, may_restart=getattr(args, "may_restart", False), command="validate",
                                 stream=sys.stderr)
    found = allocator_policy.describe(mode, why)
    found["table_state"] = table_state
    if found["state"] != table_state:
        print(f"dlcb validate: warning: the table was measured under the {table_state} allocator and the runs use "
              f"the {found['state']} one ({why}): calls that fault fresh pages in one and not the other move "
              "the error", file=sys.stderr, flush=True)
    return found


def _held_out(doc: dict, impl: str) -> list:
    from .validate import held_out_summary

    try:
        return held_out_summary(doc, impl)
    except ValueError as exc:  # too few records of this runner to cross-validate
        print(f"dlcb validate: no held-out figures for {impl}: {exc}", file=sys.stderr)
        return []


def _run_module(args) -> int:
    """dlcb validate --torch: one real module, end to end, against its import's prediction."""
    from .. import table as table_module
    from ..layer_runners import torch_available
    from ..models.cli import torch_module_and_input
    from .validate import format_rows, summarize_rows, validate_module

    if not torch_available():
        raise ValueError("--torch needs PyTorch: pip install torch")
    doc = table_module.load(args.table)
    net, example, name = torch_module_and_input(args.torch, args.input)
    threads = require_threads(args.threads)
    usable_runners(("torch",), doc, [args.torch], int(example.shape[0]))
    allocator = _allocator(args, doc)
    print(f"dlcb validate: {args.torch} on {tuple(example.shape)}, torch, {threads} threads, table {args.table}, "
          f"allocator {allocator['state']}", file=sys.stderr, flush=True)
    rows = validate_module(doc, net, example, threads, repeats=args.repeats, name=name, progress=sys.stderr,
                           leave_one_out=args.leave_one_out, loss=args.loss, first_touch=args.first_touch,
                           rounds=args.rounds)
    summary = summarize_rows(rows)
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary, "allocator": allocator}, indent=1))
    else:
        print(format_rows(rows, summary, execution="graph"))
    return 0
