"""`dlcb bench comm`: every collective over a sweep of sizes on every rank, into a table.

problem (collective, size) -> backend (MPI or NCCL buffers) -> measurement across ranks ->
entry -> the table's "communication" section -> α-β fits. Rank 0 writes the table after every
size (atomically: an interrupted job keeps everything it finished); the fits are added at the end.

The table's communication section:
  measurements: [{run_id, backend, collective, nbytes, ranks, hosts, dtype, count, sources,
                  status, max_error, stats (slowest rank, seconds per collective), samples_ns,
                  rank_medians_s, algbw_gbs, busbw_gbs, bus_factor, iterations_per_sample, ...}]
  fits:         [{run_id, collective, backend, ranks, alpha_s, beta_bytes_per_s, latency_s,
                  seconds_per_byte, model, fit_range_bytes, errors, regimes, regime_errors}]
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import TextIO

from .. import devices, environment
from ..records import now_iso
from ..table import new_table, write_atomic, write_text_atomic
from .collectives import COLLECTIVES, CommProblem, format_bytes
from .fit import fit_collective
from .runner import CommSettings, make_entry, time_collective
from .world import World

CSV_COLUMNS = ("backend", "collective", "ranks", "hosts", "nbytes", "dtype", "sources", "status", "median_s",
               "q1_s", "q3_s", "rel_noise", "samples", "iterations_per_sample", "algbw_gbs", "busbw_gbs",
               "max_error", "reason")


@dataclass
class CommConfig:
    backend: str
    collectives: tuple[str, ...] = COLLECTIVES
    sizes: list[int] = field(default_factory=list)          # the sweep, for every collective
    allreduce_extra: list[int] = field(default_factory=list)  # DeepBench's all-reduce sizes
    dtype: str = "float32"
    settings: CommSettings = field(default_factory=CommSettings)
    fit_range: tuple[int, int] = (1 << 10, 64 << 20)
    rounds: int = 1                  # the sweep this many times, alternating order, samples pooled

    def __post_init__(self):
        unknown = [c for c in self.collectives if c not in COLLECTIVES]
        if unknown or not self.collectives:
            raise ValueError(f"collectives must be a non-empty list of {', '.join(COLLECTIVES)}; got "
                             f"{', '.join(self.collectives) or 'none'}")
        if not self.sizes and not self.allreduce_extra:
            raise ValueError("no message sizes to measure")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"rounds must be a positive int, got {self.rounds!r}")
        low, high = self.fit_range
        if not 0 < low < high:
            raise ValueError(f"fit range must be 0 < low < high, got {low}..{high}")


def plan(config: CommConfig, ranks: int) -> list[tuple[CommProblem, list[str]]]:
    """Every (problem, where its size came from), sizes rounded to what the collective accepts
    over `ranks` ranks, duplicates merged, in collective order then size order."""
    plans = []
    for collective in config.collectives:
        sources: dict[CommProblem, list[str]] = {}
        extra = config.allreduce_extra if collective == "allreduce" else []
        for nbytes, source in [(n, "sweep") for n in config.sizes] + [(n, "deepbench") for n in extra]:
            problem = CommProblem.rounded(collective, nbytes, ranks, config.dtype)
            sources.setdefault(problem, [])
            if source not in sources[problem]:
                sources[problem].append(source)
        plans.extend(sorted(sources.items(), key=lambda item: item[0].nbytes))
    return plans


def _device_blocks(world: World, backend) -> list[dict]:
    """One block per host (MPI: its CPU) or per GPU (NCCL), with the ranks on it; rank 0 only."""
    if backend.name == "nccl":
        try:
            mine = dict(devices.detect_gpu(backend.device, measure=False), index=backend.device)
        except (RuntimeError, ImportError, OSError) as exc:
            # CuPy's NCCL works without this package's CUDA extension; the block then says less.
            mine = {"kind": "cuda", "index": backend.device, "name": backend.describe().get("gpu"),
                    "notes": [f"no full device description: {exc}"]}
        key = f"cuda:{world.hostname}:{backend.device}"
    else:
        mine = devices.detect_cpu(measure=False)
        key = f"cpu:{world.hostname}"
    gathered = world.gather((key, world.rank, world.hostname, mine))
    if gathered is None:
        return []
    blocks: dict[str, dict] = {}
    for key, rank, host, block in gathered:
        entry = blocks.setdefault(key, dict(block, id=key, host=host, ranks=[]))
        entry["ranks"].append(rank)
    return list(blocks.values())


def _csv_row(entry: dict) -> dict:
    stats = entry.get("stats") or {}
    return {"backend": entry.get("backend"), "collective": entry["collective"], "ranks": entry["ranks"],
            "hosts": len(entry.get("hosts") or []), "nbytes": entry["nbytes"], "dtype": entry["dtype"],
            "sources": "+".join(entry.get("sources") or []), "status": entry["status"],
            "median_s": stats.get("median"), "q1_s": stats.get("q1"), "q3_s": stats.get("q3"),
            "rel_noise": stats.get("rel_noise"), "samples": stats.get("count"),
            "iterations_per_sample": entry.get("iterations_per_sample"), "algbw_gbs": entry.get("algbw_gbs"),
            "busbw_gbs": entry.get("busbw_gbs"), "max_error": entry.get("max_error"), "reason": entry.get("reason")}


def to_csv(doc: dict) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in doc.get("communication", {}).get("measurements", []):
        writer.writerow(_csv_row(entry))
    return out.getvalue()


def progress_line(entry: dict) -> str:
    head = f"{entry['collective']:<13} {format_bytes(entry['nbytes']):>10}"
    if entry["status"] != "ok":
        return f"{head}  {entry['status'].upper()}: {entry.get('reason')}"
    median = entry["stats"]["median"]
    return (f"{head}  {median * 1e6:10.1f} us (slowest rank, ±{entry['stats']['rel_noise']:.0%} IQR)  "
            f"algbw {entry['algbw_gbs']:7.2f} GB/s  busbw {entry['busbw_gbs']:7.2f} GB/s  exact")


def run_comm_bench(world: World, backend, config: CommConfig, out_path, *,
                   progress_stream: TextIO | None = sys.stderr) -> dict | None:
    """Runs the plan on every rank; rank 0 writes and returns the table (None on other ranks)."""
    stream = progress_stream if world.is_root else None
    settings = config.settings
    world.check_in("the start of the communication benchmark", settings.timeout_s)
    blocks = _device_blocks(world, backend)
    hosts = sorted({b["host"] for b in blocks}) if world.is_root else []
    hosts = world.bcast(hosts)
    problems = plan(config, world.size)
    doc = None
    run_id = world.bcast(uuid.uuid4().hex)
    if world.is_root:
        doc = new_table()
        doc["runs"].append({
            "run_id": run_id, "suite": "comm", "started": now_iso(), "finished": None, "status": "running",
            "settings": {**settings.as_dict(), "collectives": list(config.collectives), "dtype": config.dtype,
                         "fit_range_bytes": list(config.fit_range), "rounds": config.rounds},
            "mpi": world.describe(), "backend": backend.describe(), "hosts": hosts,
            "harness": {"timer": "host perf_counter per rank; a sample is the slowest rank's time per "
                                 "collective over k back-to-back calls started from a barrier"},
            "environment": environment.describe([]),
        })
        doc["devices"].extend(blocks)
        doc["communication"] = {"measurements": [], "fits": []}
        write_atomic(out_path, doc)
    if stream:
        print(f"dlcb bench comm: {backend.name}, {world.size} rank(s) on {len(hosts)} host(s), "
              f"{len(problems)} sizes × {config.rounds} round(s) -> {out_path}", file=stream, flush=True)
    start = time.monotonic()
    status = "complete"
    timings: dict[CommProblem, list] = {}
    positions: dict[CommProblem, int] = {}
    steps = len(problems) * config.rounds
    try:
        for round_index in range(config.rounds):
            order = problems if round_index % 2 == 0 else problems[::-1]
            for problem, sources in order:
                if timings.get(problem) and timings[problem][0].error_before != 0.0:
                    continue  # a wrong result is not measured again
                world.check_in(problem.key(), settings.timeout_s)
                prepared = backend.prepare(problem)
                timings.setdefault(problem, []).append(time_collective(world, prepared, problem, settings))
                del prepared  # large buffers go before the next size's are made
                entry = make_entry(problem, timings[problem], settings)
                entry.update(run_id=run_id, backend=backend.name, hosts=hosts, sources=sources)
                if doc is not None:
                    measurements = doc["communication"]["measurements"]
                    if problem in positions:
                        measurements[positions[problem]] = entry
                    else:
                        positions[problem] = len(measurements)
                        measurements.append(entry)
                    write_atomic(out_path, doc)
                    write_text_atomic(out_path.with_suffix(".csv"), to_csv(doc))
                if stream:
                    done = sum(len(t) for t in timings.values())
                    round_note = f" round {round_index + 1}/{config.rounds}" if config.rounds > 1 else ""
                    print(f"[{done}/{steps}{round_note} {time.monotonic() - start:6.1f}s] {progress_line(entry)}",
                          file=stream, flush=True)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        raise
    finally:
        if doc is not None:
            _finish(doc, config, world.size, status)
            write_atomic(out_path, doc)
            write_text_atomic(out_path.with_suffix(".csv"), to_csv(doc))
    return doc


def _finish(doc: dict, config: CommConfig, ranks: int, status: str) -> None:
    run = doc["runs"][0]
    measurements = doc["communication"]["measurements"]
    for collective in config.collectives:
        fit = fit_collective(measurements, collective, config.backend, ranks, *config.fit_range)
        if fit is not None:
            doc["communication"]["fits"].append(dict(fit, run_id=run["run_id"]))
    run["status"] = status
    run["finished"] = now_iso()


def format_comm(doc: dict) -> str:
    """The communication section as text: one line per measurement, then the fits."""
    section = doc.get("communication") or {}
    lines = []
    for entry in section.get("measurements", []):
        lines.append(f"{entry.get('backend', '?'):<5} p={entry['ranks']:<3} {progress_line(entry)}")
    fits = section.get("fits", [])
    if fits:
        lines.append("")
        lines.append("α-β fits (relative-error least squares; errors |predicted − measured| / measured):")
        lines.append(f"{'backend':<7} {'collective':<13} {'p':>3} {'α (µs)':>9} {'β (GB/s)':>9} "
                     f"{'sizes':>17} {'1 line: max / median / LOO max':>31} {'regimes':>7} "
                     f"{'regimes: max / LOO max':>23}")
        for fit in fits:
            low, high = fit["fit_range_bytes"]
            beta = fit.get("beta_bytes_per_s")
            err, reg = fit["errors"], fit["regime_errors"]
            lines.append(
                f"{fit['backend']:<7} {fit['collective']:<13} {fit['ranks']:>3} {fit['alpha_s'] * 1e6:>9.2f} "
                f"{(beta or 0) / 1e9:>9.2f} {format_bytes(low) + '..' + format_bytes(high):>17} "
                f"{err['in_sample']['max']:>12.1%} / {err['in_sample']['median']:>5.1%} / "
                f"{err['leave_one_out']['max']:>6.1%} {len(fit['regimes']):>7} "
                f"{reg['in_sample']['max']:>12.1%} / {reg['leave_one_out']['max']:>6.1%}")
    return "\n".join(lines) if lines else "no communication measurements"
