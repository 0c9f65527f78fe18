"""`dlcb bench comm`: the communication benchmarks, under `mpirun -n P` (or alone, one rank)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..argtypes import positive_float, positive_int
from .collectives import COLLECTIVES, COMM_DTYPES, deepbench_allreduce_sizes, parse_bytes, size_sweep

EXIT_FAILED = 3


def _size(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH such as 1K:64M, got {text!r}")
    low, high = _size(low), _size(high)
    if low >= high:
        raise argparse.ArgumentTypeError(f"LOW must be below HIGH, got {text!r}")
    return low, high


def _collectives(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower().replace("-", "").replace("_", "")
                                for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in COLLECTIVES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"collectives must be a comma list of {', '.join(COLLECTIVES)}; "
                                         f"got {text!r}")
    return names


def add_parser(bench_subparsers) -> argparse.ArgumentParser:
    comm = bench_subparsers.add_parser(
        "comm", help="time MPI/NCCL collectives over message sizes (run under mpirun -n P)",
        description="Times all-reduce, all-gather, reduce-scatter and broadcast over a sweep of message "
                    "sizes on every rank of an MPI job (start it with `mpirun -n P dlcb bench comm`; alone "
                    "it is a job of one rank), checks every result exactly, reports algorithm and bus "
                    "bandwidth (nccl-tests definitions) and fits α-β models that `dlcb scale "
                    "--interconnect measured` reads from the table.")
    comm.add_argument("--backend", choices=("auto", "mpi", "nccl"), default="auto",
                      help="mpi: host buffers through mpi4py; nccl: GPU buffers through CuPy's NCCL, one GPU "
                           "per rank (auto: nccl when it is usable, else mpi)")
    comm.add_argument("--collectives", type=_collectives, default=COLLECTIVES, metavar="NAME,...",
                      help=f"comma list of {', '.join(COLLECTIVES)} (default: all)")
    comm.add_argument("--min-bytes", type=_size, default=8, metavar="SIZE", help="smallest message (default: 8)")
    comm.add_argument("--max-bytes", type=_size, default=256 << 20, metavar="SIZE",
                      help="largest message of the sweep (default: 256M)")
    comm.add_argument("--step", type=positive_int, default=2, metavar="FACTOR",
                      help="each size is FACTOR times the one before (default: 2)")
    comm.add_argument("--no-deepbench", action="store_true",
                      help="leave out DeepBench's all-reduce sizes (all_reduce.csv, up to 258 MB), which are "
                           "otherwise measured too")
    comm.add_argument("--dtype", choices=tuple(COMM_DTYPES), default="float32")
    comm.add_argument("--fit-range", type=_size_range, default=(1 << 10, 64 << 20), metavar="LOW:HIGH",
                      help="sizes the α-β fits use (default: 1K:64M)")
    comm.add_argument("--noise", type=positive_float, default=0.05,
                      help="target relative noise IQR/median of the slowest-rank samples (default: 0.05)")
    comm.add_argument("--min-samples", type=positive_int, default=5)
    comm.add_argument("--max-time", type=positive_float, default=1.0,
                      help="seconds of samples per size before giving up on the noise target (default: 1)")
    comm.add_argument("--rounds", type=positive_int, default=1,
                      help="measure the whole sweep N times, in the opposite order each time, and pool each "
                           "size's samples: a slow spell of the machine then spreads over all sizes instead "
                           "of bending one stretch of the curve (default: 1)")
    comm.add_argument("--timeout", type=positive_float, default=120.0, metavar="SECONDS",
                      help="a rank that does not arrive, or a size that does not finish, within this many "
                           "seconds (plus 20 × --max-time for a size) aborts the job, naming the rank "
                           "(default: 120)")
    comm.add_argument("-o", "--output", type=Path, default=None,
                      help="table file (JSON; a CSV is written beside it). Default: results/dlcb-comm-TIME.json")
    comm.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return comm


def _config(args, backend: str):
    from .bench import CommConfig
    from .runner import CommSettings

    if args.max_bytes < args.min_bytes:
        raise ValueError(f"--max-bytes ({args.max_bytes}) is below --min-bytes ({args.min_bytes})")
    settings = CommSettings(noise_target=args.noise, min_samples=max(3, args.min_samples),
                            max_samples=max(200, args.min_samples), max_time=args.max_time,
                            timeout_s=args.timeout)
    extra = [] if args.no_deepbench else deepbench_allreduce_sizes()
    return CommConfig(backend=backend, collectives=args.collectives,
                      sizes=size_sweep(args.min_bytes, args.max_bytes, args.step), allreduce_extra=extra,
                      dtype=args.dtype, settings=settings, fit_range=args.fit_range, rounds=args.rounds)


def _backend(name: str, world):
    from .backends import NcclBackend, make_backend

    if name == "auto":
        name = "nccl" if NcclBackend.unavailable_reason(world) is None else "mpi"
    return make_backend(name, world)


def run(args) -> int:
    from ..bench import default_output
    from .bench import format_comm, run_comm_bench
    from .world import CommError, init_world, run_guarded

    try:
        world = init_world(require_mpi=True, timeout_s=args.timeout)
    except CommError as exc:
        print(f"dlcb bench comm: {exc}", file=sys.stderr)
        return 1
    backend = run_guarded(world, _backend, args.backend, world)
    config = _config(args, backend.name)
    out = world.bcast(args.output or default_output("comm"))
    stream = None if args.quiet else sys.stderr
    if world.is_root and stream and world.size == 1:
        print(f"dlcb bench comm: {world.note}", file=stream)
    try:
        doc = run_guarded(world, run_comm_bench, world, backend, config, out, progress_stream=stream)
    except KeyboardInterrupt:
        if world.is_root:
            print(f"\ndlcb bench comm: interrupted; finished sizes are in {out}", file=sys.stderr)
        return 130
    if not world.is_root:
        return 0
    print(format_comm(doc))
    print(f"\ntable: {out} (and {out.with_suffix('.csv')})")
    failed = [e for e in doc["communication"]["measurements"] if e["status"] != "ok"]
    return EXIT_FAILED if failed else 0
