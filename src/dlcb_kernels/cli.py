"""The `dlcb` command line: bench, show, devices, merge; bench comm, models, predict, scale, validate,
compare, report (their parsers and runners live beside the code they drive: comm/cli.py,
models/cli.py, predict/cli_*.py, report/cli_*.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from ._restart import restart_command
from ._validate import require_threads
from .argtypes import positive_float, positive_int
from .ops.gemm import resolve_isa

EXIT_FAILED_RECORDS = 3
EXIT_INTERRUPTED = 130


def _gemm_shape(text: str):
    from .problems import GemmProblem

    dims, _, layout = text.partition(":")
    layout = layout.upper() or "NN"
    try:
        m, n, k = (int(d) for d in dims.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MxNxK[:NN|TN|NT|TT], got {text!r}") from None
    if layout not in ("NN", "TN", "NT", "TT"):
        raise argparse.ArgumentTypeError(f"layout must be NN, TN, NT or TT, got {layout!r}")
    try:
        return GemmProblem(m, n, k, trans_a=layout[0] == "T", trans_b=layout[1] == "T")
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _problem_spec(text: str):
    """OP:name=value,... -> that op's problem, e.g. conv:n=8,c=64,h=56,w=56,k=64,r=3,s=3,pad_h=1,pad_w=1."""
    from .problems import PROBLEM_TYPES, problem_from_params

    op, _, fields = text.partition(":")
    if op not in PROBLEM_TYPES or not fields:
        raise argparse.ArgumentTypeError(f"expected OP:name=value,... with OP one of {', '.join(PROBLEM_TYPES)}; "
                                         f"got {text!r}")
    params = {}
    for item in fields.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected name=value in {text!r}, got {item!r}")
        value = value.strip()
        params[name.strip()] = int(value) if value.lstrip("-").isdigit() else value
    try:
        return problem_from_params(op, params)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def package_version() -> str:
    from . import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    from .suites import SUITES

    parser = argparse.ArgumentParser(prog="dlcb", description="Deep-learning kernel benchmarks: our "
                                     "kernels against vendor libraries, as per-device throughput tables.")
    parser.add_argument("--version", action="version", version=f"dlcb {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="run a suite and write a throughput table")
    bench.add_argument("--suite", choices=SUITES, default="quick", help="problem suite (default: quick)")
    bench.add_argument("--ops", default=None,
                       help="comma list of ops to run: gemm, conv, rnn, and for the models suite memory (its "
                            "memory-bound layer calls); default: all of the suite's")
    bench.add_argument("--impl", default="ours,vendor",
                       help="comma list: ours, vendor, all, or implementation names such as ours-avx2, numpy, "
                            "torch, onnxruntime (default: ours,vendor; a vendor library that is not installed "
                            "is recorded as unavailable)")
    bench.add_argument("--device", default="auto",
                       help="auto (the first CUDA device when one is usable, else the CPU), cpu, cuda or cuda:N; "
                            "on a GPU, --suite quick runs the gpu-quick suite")
    bench.add_argument("--gpu-timing", choices=("auto", "single", "batched", "graph"), default="auto",
                       help="CUDA-event timing of GPU kernels: one call per sample, N calls per sample, or N "
                            "calls captured in a CUDA graph (auto: batched for short kernels)")
    bench.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                       help="run the suite's problems in this dtype (default: each problem's own; the CPU "
                            "kernels are float32, so 16-bit problems are for GPUs)")
    bench.add_argument("--threads", type=positive_int, default=None,
                       help="threads for every implementation (default: OpenMP's, i.e. OMP_NUM_THREADS or all cores)")
    bench.add_argument("--cache", choices=("warm", "cold", "both"), default="warm",
                       help="warm: back-to-back calls; cold: last-level cache flushed before each sample")
    bench.add_argument("-o", "--output", type=Path, default=None,
                       help="table file (JSON; a CSV is written beside it). Default: results/dlcb-SUITE-TIME.json")
    bench.add_argument("--noise", type=positive_float, default=0.02,
                       help="target relative noise IQR/median that stops sampling (default: 0.02)")
    bench.add_argument("--min-samples", type=positive_int, default=10)
    bench.add_argument("--max-time", type=positive_float, default=2.0,
                       help="seconds of sampling per measurement before giving up on the noise target")
    bench.add_argument("--rounds", type=positive_int, default=1,
                       help="repeat every measurement N times, alternating implementations, and pool the "
                            "samples (steadier ratios on a noisy machine; default: 1)")
    bench.add_argument("--full", action="store_true",
                       help="run DeepBench shapes at full size (default: scale down those above --max-gflop)")
    bench.add_argument("--max-gflop", type=positive_float, default=None,
                       help="per-call GFLOP budget above which DeepBench shapes are scaled down (default: 8 on "
                            "the CPU; none on a GPU, where every DeepBench shape runs in milliseconds)")
    bench.add_argument("--layout", choices=("NCHW", "NHWC"), default=None,
                       help="run the suite's convolutions in this layout (default: each problem's own; GPU "
                            "tensor-core convolutions take NHWC)")
    bench.add_argument("--batch", type=positive_int, default=8,
                       help="batch size of the models suite's layers (default: 8)")
    bench.add_argument("--models", default=None, metavar="NAME|FILE,...",
                       help="with --suite models: only these models, reference names (e.g. ResNet50,VGG16) or "
                            "model files (.json, .yaml)")
    bench.add_argument("--mode", choices=("infer", "train", "both"), default="infer",
                       help="with --suite models: the passes to measure, those `dlcb predict --mode` charges: "
                            "infer (forward kernels, memory-bound layers at inference), train (forward, backward "
                            "data and weights, memory-bound layers' training forward and backward) or both "
                            "(default: infer)")
    bench.add_argument("--no-anchors", dest="anchors", action="store_false",
                       help="with --suite models: leave out the anchor layers (token-major fc, 3x3/1x1/depthwise 3x3 "
                            "and 5x5/single-channel convolutions, dropout at 0.1 and 0.5: about a minute), which let "
                            "`dlcb predict` interpolate for models the table does not hold")
    bench.add_argument("--limit", type=positive_int, default=None, help="run only the first N problems")
    bench.add_argument("--shape", action="append", type=_gemm_shape, default=None, metavar="MxNxK[:TT]",
                       help="run this GEMM instead of a suite (repeatable); :NN, :TN, :NT or :TT sets "
                            "which of A and B are transposed")
    bench.add_argument("--problem", action="append", type=_problem_spec, default=None, metavar="OP:NAME=VALUE,...",
                       help="run this problem instead of a suite (repeatable), with the fields of its problem "
                            "type, e.g. conv:n=8,c=64,h=56,w=56,k=64,r=3,s=3,pad_h=1,pad_w=1,direction=fwd or "
                            "rnn:hidden=512,batch=32,timesteps=25,cell=lstm,direction=bwd")
    bench.add_argument("--peak", choices=("measured", "theoretical"), default="measured",
                       help="the peak that %% of peak is held against (default: measured)")
    bench.add_argument("--peak-store", choices=("use", "refresh", "off"), default="use",
                       help="the measured peak records are held against: use (default) the highest this "
                            "device has measured over its runs, kept in the user's cache folder (see "
                            "DLCB_CACHE_DIR); refresh: start again from this run's probe; off: this run's "
                            "probe only, nothing kept")
    bench.add_argument("--omp-wait", choices=("auto", "runtime", "passive"), default="auto",
                       help="how OpenMP workers wait between parallel regions: auto (the runtime's default "
                            "spin on an idle machine, PASSIVE when other processes are busy at the start: "
                            "the run restarts itself with OMP_WAIT_POLICY=PASSIVE), runtime, or passive. "
                            "A wait policy set in the environment is always kept")
    bench.add_argument("--allocator", choices=("steady", "system"), default="steady",
                       help="steady (default): the C allocator keeps and reuses freed memory (glibc tunables; "
                            "the run restarts itself with them), so a call's time does not depend on whether "
                            "its buffers happen to be fresh pages; system: the C library as the environment "
                            "set it, page faults included. Recorded in the table (environment.allocator)")
    bench.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    from .comm import cli as comm_cli

    comm_cli.add_parser(bench.add_subparsers(dest="bench_what", metavar="{comm}",
                                             help="what to benchmark instead of kernels"))

    show = sub.add_parser("show", help="print a table file")
    show.add_argument("table", type=Path)
    show.add_argument("--format", choices=("text", "csv", "json"), default="text")

    devices = sub.add_parser("devices", help="print the detected devices and their peaks")
    devices.add_argument("--threads", type=positive_int, default=None)
    devices.add_argument("--no-measure", action="store_true", help="skip the clock/peak/bandwidth probes")
    devices.add_argument("--json", action="store_true")

    merge = sub.add_parser("merge", help="merge tables (e.g. one per device) into one")
    merge.add_argument("tables", type=Path, nargs="+")
    merge.add_argument("-o", "--output", type=Path, required=True)
    for module in _command_modules().values():
        module.add_parser(sub)
    return parser


def _command_modules() -> dict:
    """The subcommands defined outside this file, by name."""
    from .models import cli as models_cli
    from .predict import cli_predict, cli_scale, cli_validate
    from .report import cli_compare, cli_report

    return {"models": models_cli, "predict": cli_predict, "scale": cli_scale, "validate": cli_validate,
            "compare": cli_compare, "report": cli_report}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.may_restart = argv is None  # the program itself, not a call from Python: exec is safe
    try:
        resolve_isa("auto")  # a DLCB_ISA this CPU cannot run is an error before any work
        commands = {"bench": _bench, "show": _show, "devices": _devices, "merge": _merge}
        commands.update({name: module.run for name, module in _command_modules().items()})
        if args.command == "bench" and args.bench_what == "comm":
            from .comm import cli as comm_cli

            return comm_cli.run(args)
        status = commands[args.command](args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below rather than at exit
        return status
    except BrokenPipeError:
        # The reader went away (`dlcb show t.json | head -1`): nothing more to say to it, and
        # Python's own flush of stdout at exit must not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, OSError, RecursionError) as exc:
        print(f"dlcb: error: {_user_error(exc)}", file=sys.stderr)
        return 1


def _user_error(exc: BaseException) -> str:
    """One line for an error caused by the user's input or files, not by dlcb."""
    if isinstance(exc, RecursionError):
        return "an input file is nested too deeply to read"
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
        return f"{target}: {exc.strerror.lower()}"
    return str(exc)


# An MPI job's ranks must all have started within this time (imports from a shared file system
# can be slow on many nodes), and each collective of the final merge must end within this one.
_RANK_START_TIMEOUT_S = 300.0
_RANK_MERGE_TIMEOUT_S = 600.0


def _bench(args) -> int:
    from .comm.world import CommError, init_world, run_guarded

    try:
        world = init_world(timeout_s=_RANK_START_TIMEOUT_S)
    except CommError as exc:
        print(f"dlcb bench: error: {exc}", file=sys.stderr)
        return 1
    if not world.uses_mpi:  # the usual case: nothing to say about MPI
        return _bench_here(args)
    try:
        return run_guarded(world, _bench_ranks, args, world)
    except KeyboardInterrupt:
        # ends every rank: the others would wait for this one at the merge
        world.abort("interrupted; the finished records are in the per-rank tables", EXIT_INTERRUPTED)


def _bench_here(args) -> int:
    """The benchmark of one process on one device: today's `dlcb bench`."""
    from . import allocator_policy
    from .bench import default_output, run_bench
    from .table import require_writable
    from .targets import gpu_skipped_note, parse_device

    kind, index = parse_device(args.device)
    note = gpu_skipped_note() if args.device == "auto" else None
    if note and not args.quiet:
        print(f"dlcb bench: {note}", file=sys.stderr)
    config = _bench_config(args, kind, index)
    out = require_writable(args.output or default_output(config.suite))
    args.allocator_why = allocator_policy.apply(args.allocator, may_restart=args.may_restart, command="bench",
                                                stream=None if args.quiet else sys.stderr)
    machine, why = _wait_policy(args, kind)
    _interrupt_on_signals()
    stream = None if args.quiet else sys.stderr
    if stream:
        _announce(config, args.cache, out, stream)
    try:
        doc = run_bench(config, out, progress_stream=stream, machine_at_start=machine, openmp_why=why,
                        allocator_mode=args.allocator, allocator_why=args.allocator_why)
    except KeyboardInterrupt:
        print(f"\ndlcb bench: interrupted; {_keep_interrupted(out)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return _report(doc, out)


def _wait_policy(args, kind: str) -> tuple[dict | None, str | None]:
    """The machine's state at the start and the OpenMP wait policy chosen from it; starts the
    command again under another policy where that is the choice (see openmp_policy)."""
    from . import openmp_policy
    from .measure import contention

    why, machine = openmp_policy.inherited_choice()
    if why is not None:
        return machine, why
    machine = contention.sample()
    if kind != "cpu":
        return machine, "not chosen: the kernels run on a GPU"
    policy, why = openmp_policy.choose(args.omp_wait, machine)
    env = openmp_policy.restart_environment(policy, why, machine)
    if env is None:
        return machine, why
    if not args.may_restart:
        return machine, f"{why}; not applied: called from Python, where the runtime's policy is fixed at load"
    if not args.quiet:
        print(f"dlcb bench: starting again with OMP_WAIT_POLICY=PASSIVE ({why})", file=sys.stderr, flush=True)
    restart_command(env)


def _keep_interrupted(out: Path) -> str:
    """The CSV of what an interrupted run finished, and where both are."""
    from .table import load, write_csv

    if not out.exists():
        return "no record had finished, so no table was written"
    write_csv(out.with_suffix(".csv"), load(out))
    return f"the finished records are in {out} (and {out.with_suffix('.csv')})"


def _bench_ranks(args, world) -> int:
    """An MPI job: the lowest rank on each (host, device) measures it into its own table, the
    others idle; rank 0 gathers the tables into one (see comm/inventory.py)."""
    from . import allocator_policy, cuda
    from .bench import default_output, run_bench
    from .comm.inventory import (
        Placement,
        PrefixedLines,
        cpu_binding_note,
        group_of,
        group_ranks,
        merge_rank_tables,
        rank_gpu_index,
        rank_table_path,
        wait_for_all_ranks,
    )
    from .table import write_atomic
    from .targets import gpu_skipped_note, parse_device

    # rank 0 speaks for the job; the other ranks' lines say whose they are
    stderr = sys.stderr if world.is_root else PrefixedLines(f"[rank {world.rank} {world.hostname}] ", sys.stderr)

    def say(text: str) -> None:
        if not args.quiet:
            print(f"dlcb bench: {text}", file=stderr, flush=True)

    _interrupt_on_signals()
    args.allocator_why = allocator_policy.apply(
        args.allocator, may_restart=False, command="bench",
        why_not="an MPI rank cannot start again once MPI is up; give the job GLIBC_TUNABLES="
                f"{':'.join(allocator_policy.STEADY_TUNABLES)} in its environment")
    kind, index = parse_device(args.device)
    if kind == "cuda":
        index = rank_gpu_index(args.device, index, world.local_rank, cuda.status().device_count)
    here = (Placement(world.rank, world.hostname, "cpu") if kind == "cpu" else
            Placement(world.rank, world.hostname, f"cuda:{index}", cuda.device_properties(index)["pci_bus_id"]))
    with world.deadline("sharing each rank's device", _RANK_MERGE_TIMEOUT_S):
        groups = group_ranks(world.allgather(here))
    group = group_of(groups, world.rank)
    if world.is_root:
        say(f"{world.note}: {len(groups)} device(s) to measure: {'; '.join(g.describe() for g in groups)}")

    config = None
    if group.measuring_rank == world.rank:
        note = gpu_skipped_note() if args.device == "auto" else None
        if note:
            say(note)
        binding = cpu_binding_note() if kind == "cpu" else None
        if binding:
            say(binding)
        config = _bench_config(args, kind, index)
    elif not args.quiet:
        print(f"dlcb bench: rank {world.rank} on {world.hostname} shares {group.device} with rank "
              f"{group.measuring_rank}: not measuring", file=sys.stderr, flush=True)
    with world.deadline("sharing the output path", _RANK_MERGE_TIMEOUT_S):
        out = Path(world.bcast(str(args.output or default_output(config.suite)) if world.is_root else None))

    doc = None
    rank_out = rank_table_path(out, world.rank)
    if config is not None:
        if not args.quiet:
            _announce(config, args.cache, rank_out, stderr)
        try:
            doc = run_bench(config, rank_out, progress_stream=None if args.quiet else stderr,
                            run_fields={"mpi": world.describe(), "rank": world.rank, "host": world.hostname},
                            device_fields=group.block_fields(), allocator_mode=args.allocator,
                            allocator_why=args.allocator_why)
        except KeyboardInterrupt:
            world.abort(f"interrupted; its finished records are in {rank_out}", EXIT_INTERRUPTED)
        say(f"finished {group.device} on {world.hostname}; waiting for the other ranks")
    wait_for_all_ranks(world)
    with world.deadline("gathering the tables at rank 0", _RANK_MERGE_TIMEOUT_S):
        docs = world.gather(doc)
    code = None
    if world.is_root:
        merged = merge_rank_tables([d for d in docs if d is not None])
        write_atomic(out, merged)
        code = _report(merged, out)
        say(f"merged the tables of rank(s) {', '.join(str(g.measuring_rank) for g in groups)} into {out}; "
            f"removing the per-rank files ({out.stem}.rank*{out.suffix})")
    with world.deadline("sharing the exit status", _RANK_MERGE_TIMEOUT_S):
        code = world.bcast(code)
    if doc is not None:
        try:
            rank_out.unlink()
        except OSError as exc:
            say(f"could not remove {rank_out} (its records are in {out}): {exc}")
    return code


def _bench_config(args, kind: str, index: int):
    """The BenchConfig of `dlcb bench` on one device (kind "cpu" or "cuda", index the GPU's)."""
    from . import registry
    from .bench import BenchConfig
    from .measure import Settings
    from .suites import MODEL_OPS, OPS, SuiteProblem, load_suite
    from .targets import make_target

    suite = "gpu-quick" if kind == "cuda" and args.suite == "quick" else args.suite
    if args.ops is None:
        ops = MODEL_OPS if suite == "models" else OPS
    else:
        ops = tuple(op.strip() for op in args.ops.split(",") if op.strip())
    if args.mode != "infer" and suite != "models":
        raise ValueError(f"--mode is for the models suite, not {suite!r}")
    if not args.anchors and suite != "models":
        raise ValueError(f"--no-anchors is for the models suite, not {suite!r}")
    if args.shape or args.problem:
        chosen = list(dict.fromkeys((args.shape or []) + (args.problem or [])))
        ops = tuple(dict.fromkeys(p.op for p in chosen))
        problems = [SuiteProblem(p, {"set": "custom"}) for p in chosen]
        suite = "custom"
    else:
        names = tuple(n.strip() for n in args.models.split(",") if n.strip()) if args.models else None
        max_gflop = args.max_gflop or (8.0 if kind == "cpu" else None)
        problems = load_suite(suite, ops, full=args.full or max_gflop is None,
                              max_flops=(max_gflop or 8.0) * 1e9, batch=args.batch,
                              model_names=names, mode=args.mode, anchors=args.anchors)
    if args.dtype:
        problems = [SuiteProblem(dataclasses.replace(sp.problem, dtype=args.dtype), sp.labels) for sp in problems]
    if args.layout:
        problems = [SuiteProblem(dataclasses.replace(sp.problem, layout=args.layout), sp.labels)
                    if getattr(sp.problem, "has_tensor_layout", False) else sp for sp in problems]
    if args.limit:
        problems = problems[: args.limit]
    impls = registry.select(list(ops), args.impl, backend=kind)
    settings = Settings(noise_target=args.noise, min_samples=max(3, args.min_samples),
                        max_samples=max(500, args.min_samples), max_time=args.max_time,
                        min_time=min(0.2, args.max_time),
                        settle=0.25 if kind == "cpu" else 0.0)  # no CPU thread pools to wait for
    threads = require_threads(args.threads)
    target = make_target(kind, index, threads, args.gpu_timing)
    caches = ("warm", "cold") if args.cache == "both" else (args.cache,)
    return BenchConfig(problems, impls, threads, caches, settings, suite=suite, peak_basis=args.peak,
                       peak_store=args.peak_store,
                       rounds=args.rounds, target=target)


def _announce(config, cache: str, out: Path, stream) -> None:
    """The run's header line: what will be measured where, and into which file."""
    pairs = sum(impl.op == sp.problem.op for sp in config.problems for impl in config.implementations)
    where = f"{config.threads} threads" if config.target.backend == "cpu" else f"cuda:{config.target.index}"
    print(f"dlcb bench: suite {config.suite}, {len(config.problems)} problems, {pairs} problem x implementation "
          f"pairs ({', '.join(dict.fromkeys(i.variant for i in config.implementations))}), {where}, "
          f"cache {cache} -> {out}", file=stream, flush=True)


def _report(doc: dict, out: Path) -> int:
    """Writes the CSV beside the table, prints the summary; the exit status the records call for."""
    from .results import Table
    from .summary import format_summary
    from .table import write_csv

    write_csv(out.with_suffix(".csv"), doc)
    table = Table.from_json(doc, str(out))
    print(format_summary(table))
    print(f"\ntable: {out} (and {out.with_suffix('.csv')})")
    if any(r.status in ("failed", "error") for r in table.records):
        return EXIT_FAILED_RECORDS
    return 0


def _interrupt_on_signals() -> None:
    """SIGINT and SIGTERM end a run as "interrupted", keeping every finished record, even where
    the parent started us with SIGINT ignored (as shells do for background jobs)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _show(args) -> int:
    from .results import Table
    from .summary import format_summary
    from .table import load, to_csv

    doc = load(args.table)
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=1)
        print()
    elif args.format == "csv":
        sys.stdout.write(to_csv(doc))
    else:
        table = Table.from_json(doc, str(args.table))
        for run in table.runs:
            env = run.environment
            openmp = env.get("openmp") or {}
            wait = f"  OpenMP wait {openmp['wait_policy']}" if openmp else ""
            print(f"run {run.run_id[:8]}  suite {run.suite}  {run.status}  started {run.started}  threads "
                  f"{run.threads}  dlcb-kernels {env.get('packages', {}).get('dlcb-kernels')} "
                  f"({env.get('build_revision')}){wait}")
        for device in table.devices:
            ranks = f"  ranks {', '.join(map(str, device.get('ranks')))}" if device.get("ranks") else ""
            print(f"device {device.id}: {device.name}{ranks}")
        print()
        if table.records or not table.communication:
            print(format_summary(table))
        if table.communication:
            from .comm.bench import format_comm

            print(format_comm(doc))
    return 0


def _devices(args) -> int:
    from . import cuda, devices

    threads = require_threads(args.threads)
    cpu = devices.detect_cpu(threads=threads, measure=not args.no_measure)
    status = cuda.status()
    gpus = []
    if status.available:
        gpus = [devices.detect_gpu(i, measure=not args.no_measure) for i in range(status.device_count)]
    if args.json:
        json.dump({"cpu": cpu, "cuda": {"available": status.available, "reason": status.reason}, "gpus": gpus},
                  sys.stdout, indent=1, default=str)
        print()
        return 0
    print(devices.format_cpu(cpu))
    if gpus:
        for gpu in gpus:
            print(devices.format_gpu(gpu))
    else:
        print(f"CUDA: unavailable ({status.reason})")
    return 0


def _merge(args) -> int:
    from .table import load, merge, require_writable, write_atomic

    require_writable(args.output)
    merged = merge([load(path) for path in args.tables])
    write_atomic(args.output, merged)
    print(f"merged {len(args.tables)} tables: {len(merged['devices'])} devices, "
          f"{len(merged['records'])} records -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
