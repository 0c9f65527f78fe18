"""Plain-text views of a table: the per-record summary and the geometric means of our speed
against the best vendor, with every record that is not to be taken as fact marked."""

from __future__ import annotations

import math
from collections import defaultdict
from textwrap import shorten

from .results import Record, Table


def _table(doc) -> Table:
    return doc if isinstance(doc, Table) else Table.from_json(doc)


def _percent_of_peak(record: Record) -> str:
    """% of peak, or "above!" where the record beats the peak it is held against: a wrong peak or
    a wrong time, never a real figure (the record's exceeds_peak says so too)."""
    if record.percent_of_peak is None:
        return "-"
    return "above!" if record.exceeds_peak else f"{record.percent_of_peak:.1f}"


def format_records(doc) -> str:
    table = _table(doc)
    header = ("problem", "impl", "cache", "status", "time ms", "GFLOP/s", "GB/s", "% peak", "vs vendor")
    rows = []
    for r in table.records:
        if r.ok:
            vs = r.vs_best_vendor
            rows.append((r.problem, r.variant, r.cache, r.status_mark, f"{r.median * 1e3:.3f}", f"{r.gflops:.1f}",
                         f"{r.gbs:.1f}", _percent_of_peak(r), f"x{vs.speedup:.3f} {vs.variant}" if vs else "-"))
        else:
            rows.append((r.problem, r.variant, r.cache, r.status, "-", "-", "-", "-",
                         shorten(r.reason or "", 60, placeholder=" ...")))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    above = sum(r.ok and r.exceeds_peak for r in table.records)
    if above:
        lines.append(f"above!: {above} record(s) faster than the peak they are held against: that peak or "
                     "that time is wrong")
    unconverged = sum(r.unconverged for r in table.records)
    if unconverged:
        lines.append(f"ok~: {unconverged} record(s) stopped at their time limit before the noise target; "
                     "their times and ratios are shaky")
    disturbed = sum(r.disturbed for r in table.records)
    if disturbed:
        lines.append(f"ok*: {disturbed} record(s) timed while other processes used the CPUs, the host slowed "
                     "the cores or the clock dropped; their times and ratios are shaky")
    return "\n".join(lines)


def speedup_geomeans(doc) -> dict:
    """{(implementation, set, direction, cache): (geometric-mean speedup vs best vendor, problem
    count)}; direction is conv's/rnn's (fwd, bwd_data, ...) and "-" for GEMM, followed by the
    dtype where it is not float32 (a bfloat16 GEMM and a float32 one are not averaged)."""
    return {key: (mean, count) for key, (mean, count, _, _) in speedup_geomeans_with_noise(doc).items()}


def speedup_geomeans_with_noise(doc) -> dict:
    """As speedup_geomeans, each value (mean, count, shaky count, mean of the steady pairs only or
    None): a pair is shaky when ours or the vendor it is held against is (see shaky)."""
    table = _table(doc)
    by_key = {(r.device_id, r.problem, r.implementation, r.dtype, r.cache): r for r in table.records}
    groups = defaultdict(list)
    for r in table.records:
        vs = r.vs_best_vendor
        if r.ok and vs:
            direction = r.direction if r.dtype == "float32" else f"{r.direction} {r.dtype}"
            vendor = by_key.get((r.device_id, r.problem, vs.implementation, r.dtype, r.cache))
            unsure = r.shaky or (vendor is not None and vendor.shaky)
            groups[(r.implementation, r.label("set", "-"), direction, r.cache)].append((vs.speedup, unsure))
    result = {}
    for key, pairs in groups.items():
        steady = [s for s, unsure in pairs if not unsure]
        result[key] = (_geomean([s for s, _ in pairs]), len(pairs), len(pairs) - len(steady),
                       _geomean(steady) if steady else None)
    return result


def _geomean(values) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def format_summary(doc) -> str:
    """The records and the geometric means, device by device where the table holds several (a
    merged table: one device's speedups are not averaged with another's), then a warning for
    each run that started on a busy machine."""
    table = _table(doc)
    warnings = "".join(f"\nwarning: {line}" for line in busy_runs(table))
    return _format_devices(table) + (f"\n{warnings}" if warnings else "")


def _format_devices(table: Table) -> str:
    device_ids = table.device_ids()
    if len(device_ids) <= 1:
        return _format_device_summary(table)
    parts = []
    for device_id in device_ids:
        block = table.device(device_id)
        ranks = block.get("ranks") if block else None
        ranks_text = f", MPI ranks {', '.join(map(str, ranks))}" if ranks else ""
        heading = f"device {device_id} ({(block.name if block else None) or 'unnamed'}{ranks_text}):"
        parts.append(f"{heading}\n{_format_device_summary(table.on_device(device_id))}")
    return "\n\n".join(parts)


def busy_runs(doc) -> list[str]:
    """Warnings for the runs of the table that started on a busy machine (see measure/contention)."""
    from .measure import contention

    return [f"run {run.run_id[:8]}: {contention.describe(run.machine_at_start)}"
            for run in _table(doc).runs if run.busy_at_start]


def _format_device_summary(table: Table) -> str:
    lines = [format_records(table)]
    means = speedup_geomeans_with_noise(table)
    if means:
        variants = {r.implementation: (r.op, r.variant) for r in table.records}
        lines.append("")
        lines.append("geometric-mean speed of ours against the best vendor (x > 1: ours faster; a pair is "
                     "shaky when either record missed its noise target or the machine disturbed it):")
        for (impl, set_name, direction, cache), (mean, count, unsure, steady) in sorted(means.items()):
            op, variant = variants[impl]
            noise = ""
            if unsure:
                without = f"x{steady:.3f} without them" if steady is not None else "none steady"
                noise = f" ({unsure} shaky; {without})"
            lines.append(f"  {op:<5} {variant:<14} {set_name:<26} {direction:<14} {cache:<5} "
                         f"x{mean:.3f} over {count} problems{noise}")
    failed = [r for r in table.records if r.status in ("failed", "error")]
    if failed:
        lines.append("")
        lines.append(f"{len(failed)} record(s) failed or errored: see their 'reason'.")
    return "\n".join(lines)
