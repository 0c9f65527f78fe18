"""Records: one per (problem, implementation, dtype, cache mode), built from a measurement as
typed results.Record values.

Also the per-problem comparison: each of our records gets its speed against the fastest
vendor record of the same problem, dtype and cache mode, measured in the same run.
"""

from __future__ import annotations

import datetime as _dt

from .results import Record, VendorComparison
from .table import finite_or_none


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def base_record(problem, impl, *, run_id: str, device_id: str, cache: str, threads: int,
                labels: dict | None = None) -> Record:
    """The record of a problem on an implementation before it is measured (status ok until
    something says otherwise)."""
    flops = problem.flops()
    nbytes = problem.bytes_min()
    # Where an op's FLOP convention leaves work out (DeepBench's RNN count omits the input
    # projection), flops_full counts everything multiplied; elsewhere the two are equal.
    flops_full = problem.flops_full() if hasattr(problem, "flops_full") else flops
    return Record(
        op=problem.op, problem=problem.key(), implementation=impl.name, variant=impl.variant,
        provider=impl.provider, backend=impl.backend, dtype=problem.dtype, cache=cache, status="ok",
        device_id=device_id, run_id=run_id, params=problem.params(), threads=threads, flops=flops,
        flops_full=flops_full, bytes=nbytes, arithmetic_intensity=flops / nbytes,
        error={"metric": problem.error_metric, "value": None, "tolerance": problem.tolerance()},
        timestamp=now_iso(), extra=dict(labels or {}))


def timed_record(base: Record, measurement, *, peak_gflops: float | None, peak_label: str | None,
                 error: float, library: str, algorithm: str | None, kernel: dict | None = None) -> Record:
    stats = measurement.stats
    median = stats.median
    gflops = base.flops / median / 1e9
    extra = dict(base.extra, **{k: v for k, v in measurement.extra.items()})
    return base.replace(
        library=library, algorithm=algorithm, kernel=kernel,
        error={**base.error, "value": finite_or_none(error)},
        stats=stats, samples_ns=tuple(round(s * 1e9) for s in measurement.samples),
        warmup_count=measurement.warmup_count, stop_reason=measurement.stop_reason,
        converged=measurement.converged, gflops=gflops, gflops_full=base.flops_full / median / 1e9,
        gbs=base.bytes / median / 1e9, peak={"gflops": peak_gflops, "label": peak_label},
        percent_of_peak=100.0 * gflops / peak_gflops if peak_gflops else None,
        exceeds_peak=bool(peak_gflops) and gflops > peak_gflops, vs_best_vendor=None,
        conditions=block_conditions(measurement.blocks) if measurement.blocks else None, extra=extra)


def block_conditions(blocks: list[dict]) -> dict:
    """A record's conditions from those of its blocks (one per round): flagged when any block
    was; each block's own conditions kept under "blocks"."""
    return {
        "throttled": any(b.get("throttled") for b in blocks),
        "contended": any(b.get("contended") for b in blocks),
        "clock_disturbed": any(b.get("clock_disturbed") for b in blocks),
        "slowed": any(b.get("slowed") for b in blocks),
        **_block_means(blocks, ("page_faults_per_call", "first_touch_s_per_page")),
        "blocks": blocks,
    }


def _block_means(blocks: list[dict], names: tuple[str, ...]) -> dict:
    """The mean over the blocks of each named reading the blocks have (CPU kernels: the page
    faults a call and the cost of a fresh page)."""
    out = {}
    for name in names:
        values = [b[name] for b in blocks if b.get(name) is not None]
        if values:
            out[name] = sum(values) / len(values)
    return out


def failed_record(base: Record, status: str, reason: str, *, library: str | None = None,
                  error: float | None = None) -> Record:
    return base.replace(status=status, reason=reason, library=library,
                        error={**base.error, "value": finite_or_none(error)})


def compare_to_vendors(records: list[Record]) -> list[Record]:
    """The records of one problem with vs_best_vendor filled on our ok ones."""
    out = []
    for ours in records:
        if ours.provider == "ours" and ours.ok:
            vendors = [r for r in records if r.provider == "vendor" and r.ok and r.dtype == ours.dtype
                       and r.cache == ours.cache]
            if vendors:
                best = min(vendors, key=lambda r: r.median)
                ratio = ours.median / best.median
                ours = ours.replace(vs_best_vendor=VendorComparison(best.implementation, best.variant, ratio,
                                                                    1.0 / ratio))
        out.append(ours)
    return out
