"""Plain-text views of a table: the per-record summary and the geometric means of our speed
against the best vendor."""

from __future__ import annotations

import math
from collections import defaultdict
from textwrap import shorten


def _short(impl: str) -> str:
    return impl.split("/")[-1]


def shaky(record: dict) -> bool:
    """An ok record whose sampling stopped before its noise target (converged false): its time,
    and any ratio built on it, is less certain than the noise target says."""
    return record["status"] == "ok" and record.get("converged") is False


def _percent_of_peak(record: dict) -> str:
    """% of peak, or "above!" where the record beats the peak it is held against: a wrong peak or
    a wrong time, never a real figure (the record's exceeds_peak says so too)."""
    if record.get("percent_of_peak") is None:
        return "-"
    return "above!" if record.get("exceeds_peak") else f"{record['percent_of_peak']:.1f}"


def format_records(doc: dict) -> str:
    header = ("problem", "impl", "cache", "status", "time ms", "GFLOP/s", "GB/s", "% peak", "vs vendor")
    rows = []
    for r in doc["records"]:
        if r["status"] == "ok":
            vs = r.get("vs_best_vendor")
            rows.append((r["problem"], _short(r["implementation"]), r["cache"], "ok~" if shaky(r) else "ok",
                         f"{r['stats']['median'] * 1e3:.3f}", f"{r['gflops']:.1f}", f"{r['gbs']:.1f}",
                         _percent_of_peak(r),
                         f"x{vs['speedup']:.3f} {_short(vs['implementation'])}" if vs else "-"))
        else:
            rows.append((r["problem"], _short(r["implementation"]), r["cache"], r["status"],
                         "-", "-", "-", "-", shorten(r.get("reason") or "", 60, placeholder=" ...")))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    above = sum(bool(r.get("exceeds_peak")) for r in doc["records"] if r["status"] == "ok")
    if above:
        lines.append(f"above!: {above} record(s) faster than the peak they are held against: that peak or "
                     "that time is wrong")
    count = sum(shaky(r) for r in doc["records"])
    if count:
        lines.append(f"ok~: {count} record(s) stopped at their time limit before the noise target; "
                     "their times and ratios are shaky")
    return "\n".join(lines)


def speedup_geomeans(doc: dict) -> dict:
    """{(implementation, set, direction, cache): (geometric-mean speedup vs best vendor, problem
    count)}; direction is conv's/rnn's (fwd, bwd_data, ...) and "-" for GEMM, followed by the
    dtype where it is not float32 (a bfloat16 GEMM and a float32 one are not averaged)."""
    return {key: (mean, count) for key, (mean, count, _, _) in speedup_geomeans_with_noise(doc).items()}


def speedup_geomeans_with_noise(doc: dict) -> dict:
    """As speedup_geomeans, each value (mean, count, shaky count, mean of the steady pairs only or
    None): a pair is shaky when ours or the vendor it is held against is (see shaky)."""
    by_key = {(r["device_id"], r["problem"], r["implementation"], r.get("dtype"), r["cache"]): r
              for r in doc["records"]}
    groups = defaultdict(list)
    for r in doc["records"]:
        vs = r.get("vs_best_vendor")
        if r["status"] == "ok" and vs:
            direction = (r.get("params") or {}).get("direction", "-")
            if r.get("dtype", "float32") != "float32":
                direction = f"{direction} {r['dtype']}"
            vendor = by_key.get((r["device_id"], r["problem"], vs["implementation"], r.get("dtype"), r["cache"]))
            unsure = shaky(r) or (vendor is not None and shaky(vendor))
            groups[(r["implementation"], r.get("set", "-"), direction, r["cache"])].append((vs["speedup"], unsure))
    result = {}
    for key, pairs in groups.items():
        steady = [s for s, unsure in pairs if not unsure]
        result[key] = (_geomean([s for s, _ in pairs]), len(pairs), len(pairs) - len(steady),
                       _geomean(steady) if steady else None)
    return result


def _geomean(values) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def format_summary(doc: dict) -> str:
    """The records and the geometric means, device by device where the table holds several (a
    merged table: one device's speedups are not averaged with another's), then a warning for
    each run that started on a busy machine."""
    warnings = "".join(f"\nwarning: {line}" for line in busy_runs(doc))
    return _format_devices(doc) + (f"\n{warnings}" if warnings else "")


def _format_devices(doc: dict) -> str:
    device_ids = list(dict.fromkeys(r["device_id"] for r in doc["records"]))
    if len(device_ids) <= 1:
        return _format_device_summary(doc)
    blocks = {d["id"]: d for d in doc["devices"]}
    parts = []
    for device_id in device_ids:
        block = blocks.get(device_id, {})
        ranks = f", MPI ranks {', '.join(map(str, block['ranks']))}" if block.get("ranks") else ""
        heading = f"device {device_id} ({block.get('name', 'unnamed')}{ranks}):"
        records = [r for r in doc["records"] if r["device_id"] == device_id]
        parts.append(f"{heading}\n{_format_device_summary(dict(doc, records=records))}")
    return "\n\n".join(parts)


def busy_runs(doc: dict) -> list[str]:
    """Warnings for the runs of the table that started on a busy machine (see measure/contention)."""
    from .measure import contention

    return [f"run {run.get('run_id', '?')[:8]}: {contention.describe(run['machine_at_start'])}"
            for run in doc.get("runs", []) if (run.get("machine_at_start") or {}).get("busy")]


def _format_device_summary(doc: dict) -> str:
    lines = [format_records(doc)]
    means = speedup_geomeans_with_noise(doc)
    if means:
        lines.append("")
        lines.append("geometric-mean speed of ours against the best vendor (x > 1: ours faster; a pair is "
                     "shaky when either record missed its noise target):")
        for (impl, set_name, direction, cache), (mean, count, unsure, steady) in sorted(means.items()):
            op = impl.split("/")[0]
            noise = ""
            if unsure:
                without = f"x{steady:.3f} without them" if steady is not None else "none steady"
                noise = f" ({unsure} shaky; {without})"
            lines.append(f"  {op:<5} {_short(impl):<14} {set_name:<26} {direction:<14} {cache:<5} "
                         f"x{mean:.3f} over {count} problems{noise}")
    failed = [r for r in doc["records"] if r["status"] in ("failed", "error")]
    if failed:
        lines.append("")
        lines.append(f"{len(failed)} record(s) failed or errored: see their 'reason'.")
    return "\n".join(lines)
