"""A benchmark run: every problem of a suite on every chosen implementation, into a table.

problem -> implementation -> measurement -> record -> table. For each problem the inputs are
made once and shared by all implementations; each result is checked against the float64
reference before any timing (a wrong result is recorded as failed and never timed).
"""

from __future__ import annotations

import platform
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from . import allocator_policy, devices, environment, openmp_policy, peak_store, registry
from .harness import Context, measure_implementation
from .measure import Settings, contention, measure_overhead
from .records import base_record, compare_to_vendors, now_iso
from .results import Record
from .suites import SuiteProblem
from .table import TableWriter
from .targets import CpuTarget


@dataclass
class BenchConfig:
    problems: list[SuiteProblem]
    implementations: list[registry.Implementation]
    threads: int
    caches: tuple[str, ...] = ("warm",)
    settings: Settings = field(default_factory=Settings)
    suite: str = "custom"
    seed: int = 0
    peak_basis: str = "measured"
    peak_store: str = "use"         # peak_store: hold records against the highest peak kept for this device
    rounds: int = 1                 # alternating repetitions of every measurement, pooled
    target: object = None           # CpuTarget (default) or CudaTarget: where the kernels run

    def __post_init__(self):
        if self.target is None:
            self.target = CpuTarget(self.threads)
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


class Progress:
    """One line per finished measurement on a stream (stderr by default): a bar, n/total, the
    elapsed time and an estimate of the time left, then what was measured."""

    BAR_WIDTH = 20

    def __init__(self, total: int, stream: TextIO | None = sys.stderr):
        self.total = total
        self.done = 0
        self.stream = stream
        self.start = time.monotonic()

    def step(self, text: str) -> None:
        self.done += 1
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done)
        filled = self.BAR_WIDTH * self.done // max(1, self.total)
        bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
        width = len(str(self.total))
        print(f"[{bar}] {self.done:>{width}}/{self.total} {_clock(elapsed)} (~{_clock(left)} left) {text}",
              file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if self.stream is not None:
            print(text, file=self.stream, flush=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def device_id(device: dict) -> str:
    """Unique across the hosts and GPUs of a job: "cpu:HOST", or "cuda:HOST:INDEX" for a GPU.
    A device block without a host name (GPU blocks have none) was described on this machine."""
    host = device.get("hostname") or device.get("host") or platform.node() or "localhost"
    if device.get("kind") == "gpu":
        return f"cuda:{host}:{device.get('index', 0)}"
    return f"{device.get('kind', 'cpu')}:{host}"


def run_bench(config: BenchConfig, out_path, *, progress_stream: TextIO | None = sys.stderr,
              device: dict | None = None, run_fields: dict | None = None,
              device_fields: dict | None = None, machine_at_start: dict | None = None,
              openmp_why: str | None = None, allocator_mode: str | None = None,
              allocator_why: str = "not chosen: the benchmark was called from Python") -> dict:
    """Runs the benchmark, writing the table to out_path after every record. Returns the table.

    run_fields and device_fields are added to the run entry and the device block (an MPI job's
    rank, host and the ranks sharing the device). machine_at_start: the contention sample the
    caller already took (else one is taken here); openmp_why: why the OpenMP wait policy is what
    it is (openmp_policy), recorded with it; allocator_mode/allocator_why: the C allocator's mode
    asked for and why it is in the state it is (allocator_policy), recorded with the state probed.

    KeyboardInterrupt marks the run "interrupted" in the file (every finished record kept) and
    propagates.
    """
    steps = sum(impl.op == sp.problem.op for sp in config.problems for impl in config.implementations)
    progress = Progress(steps * len(config.caches) * config.rounds, progress_stream)
    target = config.target
    probed = device is None
    if probed:
        if target.backend == "cpu":
            progress.note(f"probing the device ({config.threads} threads: clock, FMA peak, memory bandwidth)...")
        else:
            progress.note("probing the GPU (properties, FMA peak, copy bandwidth)...")
        device = target.describe(measure=True)
    device = dict(device, **(device_fields or {}))
    device["id"] = device_id(device)
    if probed:
        device = peak_store.apply(device, config.peak_store, when=now_iso())
        if device.get("peak_store_error"):
            progress.note(f"warning: the device's peaks could not be kept ({device['peak_store_error']}); "
                          "this run uses its own probe")
    host_timer = CpuTarget(config.threads).timer
    overhead = measure_overhead(host_timer)
    machine = machine_at_start if machine_at_start is not None else contention.sample()
    if machine is not None and machine["busy"]:
        progress.note(f"warning: {contention.describe(machine)}")
    binding = openmp_policy.binding_warning(machine)
    if binding:
        progress.note(f"warning: {binding}")
    run = {
        "run_id": uuid.uuid4().hex,
        "suite": config.suite,
        "started": now_iso(),
        "finished": None,
        "status": "running",
        "threads": config.threads,
        "caches": list(config.caches),
        "rounds": config.rounds,
        "settings": config.settings.as_dict(),
        "harness": {"timer": host_timer.name if target.backend == "cpu" else "CUDA events (per record: timer)",
                    "overhead_s": overhead.as_dict(),
                    "note": "a no-op timed by the host timer; stated, not subtracted"},
        "environment": environment.describe(registry.blas_info()),
        "machine_at_start": machine,
        **(run_fields or {}),
    }
    run["environment"]["openmp"] = openmp_policy.describe(openmp_why)
    run["environment"]["allocator"] = allocator_policy.describe(allocator_mode, allocator_why)
    if target.backend == "cuda":
        run["environment"]["cuda"] = environment.describe_cuda()
    writer = TableWriter(out_path, run, device)
    flush = target.flusher() if "cold" in config.caches else None
    monitor = target.monitor(device)
    canary = target.canary(device)
    try:
        for sp in config.problems:
            _run_problem(sp, config, writer, device, flush, monitor, canary, progress)
    except KeyboardInterrupt:
        writer.finish("interrupted", now_iso())
        raise
    writer.finish("complete", now_iso())
    return writer.doc


def _run_problem(sp: SuiteProblem, config: BenchConfig, writer: TableWriter, device: dict,
                 flush, monitor, canary, progress: Progress) -> None:
    """Every implementation and cache mode of one problem, `config.rounds` times.

    Vendors run first, so each of our records can be compared the moment it is written. With
    several rounds the order alternates (vendor, ours, ours, vendor, ...), so a slow drift of the
    machine weighs on both sides alike; each record then pools the samples of all its rounds and
    is rewritten after every round.
    """
    problem = sp.problem
    inputs = problem.make_inputs(config.seed)
    try:
        peak, peak_label = devices.peak_for(device, problem.dtype, config.peak_basis)
    except ValueError as exc:  # no peak for this dtype here: records go without % of peak
        peak, peak_label = None, str(exc)
    target = config.target
    context = Context(target, config.threads, config.settings, flush, monitor, canary, peak, peak_label,
                      first_touch=target.first_touch())
    impls = [i for i in sorted(config.implementations, key=lambda i: i.provider != "vendor")
             if i.op == problem.op and i.backend == target.backend]
    records: dict[tuple[str, str], Record] = {}      # the problem's current records
    positions: dict[tuple[str, str], int] = {}       # where each sits in the table
    measurements: dict[tuple[str, str], list] = {}
    for round_index in range(config.rounds):
        for impl in impls if round_index % 2 == 0 else impls[::-1]:
            for cache in config.caches:
                key = (impl.name, cache)
                if key in records and not records[key].ok:
                    progress.step(_progress_text(records[key]))  # failures are not repeated
                    continue
                base = base_record(problem, impl, run_id=writer.run["run_id"], device_id=device["id"],
                                   cache=cache, threads=config.threads, labels=sp.labels)
                previous = measurements.setdefault(key, [])
                record = measure_implementation(problem, inputs, impl, base, context, previous)
                records[key] = record.replace(rounds=len(previous))
                records = dict(zip(records, compare_to_vendors(list(records.values()))))
                if key not in positions:
                    positions[key] = writer.append([records[key]], flush=False)
                for other, position in positions.items():  # a new vendor time changes our ratios
                    writer.put(position, records[other])
                writer.flush()
                progress.step(_progress_text(records[key]))


def _progress_text(record: Record) -> str:
    head = f"{record.problem:<28} {record.variant:<14} {record.cache:<4}"
    if not record.ok:
        reason = record.reason or ""
        return f"{head} {reason if reason.startswith(record.status) else record.status + ': ' + reason}"
    text = f"{head} {record.median * 1e3:9.3f} ms {record.gflops:8.1f} GFLOP/s"
    if record.unconverged:
        text += f" (noise {record.rel_noise:.1%})"
    if record.contended:
        text += " CONTENDED"
    if record.slowed:
        text += " SLOWED"
    if record.throttled:
        text += " THROTTLED"
    if record.percent_of_peak is not None:
        text += f" {record.percent_of_peak:5.1f}% peak"
    vs = record.vs_best_vendor
    if vs:
        text += f"  x{vs.speedup:.3f} vs {vs.variant}"
    return text


def default_output(suite: str) -> Path:
    stamp = now_iso().replace(":", "").replace("-", "").replace("+0000", "Z")
    return Path("results") / f"dlcb-{suite}-{stamp}.json"
