"""Records: one per (problem, implementation, dtype, cache mode), built from a measurement.

Also the per-problem comparison: each of our records gets its speed against the fastest
vendor record of the same problem, dtype and cache mode, measured in the same run.
"""

from __future__ import annotations

import datetime as _dt

from .table import finite_or_none


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def base_record(problem, impl, *, run_id: str, device_id: str, cache: str, threads: int,
                labels: dict | None = None) -> dict:
    flops = problem.flops()
    nbytes = problem.bytes_min()
    # Where an op's FLOP convention leaves work out (DeepBench's RNN count omits the input
    # projection), flops_full counts everything multiplied; elsewhere the two are equal.
    flops_full = problem.flops_full() if hasattr(problem, "flops_full") else flops
    return {
        "run_id": run_id,
        "device_id": device_id,
        "op": problem.op,
        "problem": problem.key(),
        "params": problem.params(),
        **(labels or {}),
        "implementation": impl.name,
        "variant": impl.variant,
        "provider": impl.provider,
        "backend": impl.backend,
        "dtype": problem.dtype,
        "cache": cache,
        "threads": threads,
        "flops": flops,
        "flops_full": flops_full,
        "bytes": nbytes,
        "arithmetic_intensity": flops / nbytes,
        "status": "ok",
        "reason": None,
        "error": {"metric": problem.error_metric, "value": None, "tolerance": problem.tolerance()},
        "timestamp": now_iso(),
    }


def timed_record(base: dict, measurement, *, peak_gflops: float | None, peak_label: str | None,
                 error: float, library: str, algorithm: str | None) -> dict:
    stats = measurement.stats
    median = stats.median
    gflops = base["flops"] / median / 1e9
    record = dict(base)
    record.update({
        "library": library,
        "algorithm": algorithm,
        "error": {**base["error"], "value": finite_or_none(error)},
        "stats": {k: finite_or_none(v) for k, v in stats.as_dict().items()},
        "samples_ns": [round(s * 1e9) for s in measurement.samples],
        "warmup_count": measurement.warmup_count,
        "stop_reason": measurement.stop_reason,
        "converged": measurement.converged,
        "gflops": gflops,
        "gflops_full": base["flops_full"] / median / 1e9,
        "gbs": base["bytes"] / median / 1e9,
        "peak": {"gflops": peak_gflops, "label": peak_label},
        "percent_of_peak": 100.0 * gflops / peak_gflops if peak_gflops else None,
        "exceeds_peak": bool(peak_gflops) and gflops > peak_gflops,
        "vs_best_vendor": None,
    })
    record.update(measurement.extra)
    if measurement.blocks:
        record["conditions"] = block_conditions(measurement.blocks)
    return record


def block_conditions(blocks: list[dict]) -> dict:
    """A record's conditions from those of its blocks (one per round): flagged when any block
    was; each block's own conditions kept under "blocks"."""
    return {
        "throttled": any(b.get("throttled") for b in blocks),
        "contended": any(b.get("contended") for b in blocks),
        "clock_disturbed": any(b.get("clock_disturbed") for b in blocks),
        "blocks": blocks,
    }


def failed_record(base: dict, status: str, reason: str, *, library: str | None = None,
                  error: float | None = None) -> dict:
    record = dict(base)
    record.update({"status": status, "reason": reason, "library": library,
                   "error": {**base["error"], "value": finite_or_none(error)}})
    return record


def compare_to_vendors(records: list[dict]) -> None:
    """Fills vs_best_vendor on our ok records of one problem (in place)."""
    for ours in records:
        if ours["provider"] != "ours" or ours["status"] != "ok":
            continue
        vendors = [r for r in records
                   if r["provider"] == "vendor" and r["status"] == "ok"
                   and r["dtype"] == ours["dtype"] and r["cache"] == ours["cache"]]
        if not vendors:
            continue
        best = min(vendors, key=lambda r: r["stats"]["median"])
        ratio = ours["stats"]["median"] / best["stats"]["median"]
        ours["vs_best_vendor"] = {
            "implementation": best["implementation"],
            "time_ratio": ratio,        # ours / vendor median time: < 1 is faster
            "speedup": 1.0 / ratio,     # vendor / ours: > 1 is faster
        }
