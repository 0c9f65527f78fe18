"""`dlcb report`: one self-contained HTML page (plus its PNGs) from one or several throughput
tables: rooflines, % of peak, ours against the best vendor, devices side by side, predicted model
step times, data-parallel scaling, communication benchmarks and the runs' provenance.

Every bar and point built from a measured time carries the time's interquartile range as an
error bar, and every shaky record (results.Record.shaky) is marked; NOISE_LEGEND says how."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import shlex
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..argtypes import positive_int, positive_int_list
from ..results import CONTENDED_MARK, SHAKY_MARK, Device, Record, Run, Table
from . import figures
from .html import Page, Section

DEFAULT_MODELS = ("ResNet50", "VGG16", "GoogLeNet", "DeepSpeech2", "BERT-base")
MODES = ("train", "infer")
_MODE_TITLES = {"train": "training step", "infer": "inference"}
# What the predictor raises on a table or model it cannot handle: shown on the page as the reason
_PREDICTION_ERRORS = (ValueError, TypeError, KeyError, ArithmeticError)
# Ceilings a device block may carry: (field in "memory", what it is, measured?)
_BANDWIDTH_FIELDS = (("triad_gbs", "STREAM triad", True), ("copy_gbs", "device copy", True),
                     ("bandwidth_gbs", "theoretical", False))
NOISE_LEGEND = (
    "Error bars: every bar and point built from a measured time spans that time's interquartile range "
    "(q1 to q3): a throughput or % of peak runs from work / q3 to work / q1, ours against a vendor from "
    "vendor q1 / ours q3 to vendor q3 / ours q1; predicted throughputs carry the predictor's uncertainty "
    "instead. Shaky measurements are not to be taken as fact: hatched bars with a mark after them, hollow "
    f"points. {SHAKY_MARK} stopped at its time limit before its noise target, {CONTENDED_MARK} was timed while "
    "other processes used the CPUs, the host slowed the cores or the clock dropped; a ratio is shaky when "
    "either of its records is.")


def add_parser(subparsers) -> argparse.ArgumentParser:
    report = subparsers.add_parser(
        "report", help="write an HTML report (with its PNG figures) from throughput tables",
        description="Writes DIR/index.html, a self-contained page (images embedded, no network needed), "
                    "and the same figures as DIR/*.png: rooflines, % of peak, ours against the best vendor, "
                    "devices side by side, predicted model step times, data-parallel scaling, provenance.")
    report.add_argument("tables", type=Path, nargs="+", metavar="FILE", help="throughput tables (JSON)")
    report.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                        help="directory for index.html and the PNGs (created if missing)")
    report.add_argument("--models", default=",".join(DEFAULT_MODELS), metavar="NAME,...",
                        help=f"reference models (or model files) to predict on each device "
                             f"(default: {','.join(DEFAULT_MODELS)}; 'none' for no predictions)")
    report.add_argument("--batch", type=positive_int, default=32,
                        help="batch of the predicted steps (default: 32)")
    report.add_argument("--mode", choices=(*MODES, "both"), default="both",
                        help="predict training steps, inference, or both (default: both)")
    report.add_argument("--scaling-model", default="ResNet50", metavar="NAME|FILE",
                        help="the model whose data-parallel scaling is plotted per device (default: ResNet50; "
                             "'none' for no scaling plots)")
    report.add_argument("--interconnect", default="pcie3", metavar="PRESET",
                        help="the link for scaling where a table has no measured all-reduce fit in its "
                             "communication section (default: pcie3; see `dlcb scale --help` for presets)")
    report.add_argument("--workers", type=positive_int_list, default=[1, 2, 4, 8, 16], metavar="P,...",
                        help="worker counts of the scaling plots (default: 1,2,4,8,16)")
    report.add_argument("--weak-batch", type=positive_int_list, default=[16, 32, 64], metavar="N,...",
                        help="per-worker batches of the weak-scaling plot (default: 16,32,64)")
    report.add_argument("--strong-batch", type=positive_int_list, default=[256, 1024], metavar="N,...",
                        help="global batches of the strong-scaling plot, each at least the largest worker "
                             "count (default: 256,1024)")
    report.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return report


@dataclass
class DeviceView:
    """One device of one table file: what every per-device section draws."""

    label: str       # unique within the report
    slug: str        # for file names
    source: Path
    device: Device
    table: Table     # the file's runs and communication, this device's records
    doc: dict        # the same as JSON, for the predictor and the interconnect fit, which read documents

    @property
    def records(self) -> tuple:
        return self.table.records

    @property
    def name(self) -> str:
        return self.device.name or "unnamed device"


def run(args) -> int:
    from ..models import get_model
    from ..predict.plot import _pyplot
    from ..predict.scaling import INTERCONNECTS

    out = args.output
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o/--output {out} exists and is not a directory")
    docs = [(path, _load(path)) for path in args.tables]
    models = [] if args.models.strip().lower() == "none" else [
        get_model(name.strip()) for name in args.models.split(",") if name.strip()]
    scaling_model = None if args.scaling_model.lower() == "none" else get_model(args.scaling_model)
    if args.interconnect.lower() not in INTERCONNECTS:
        raise ValueError(f"--interconnect must be a preset ({', '.join(INTERCONNECTS)}); a table's measured "
                         f"all-reduce fit is used automatically where it has one")
    if min(args.strong_batch) < max(args.workers):
        raise ValueError(f"--strong-batch {min(args.strong_batch)} cannot be split over {max(args.workers)} "
                         f"workers: each global batch must be at least the largest --workers")
    try:
        _pyplot()
    except ModuleNotFoundError as exc:
        raise ValueError(str(exc)) from None
    _make_dir(out)   # only once every input is known good
    say = (lambda text: None) if args.quiet else (
        lambda text: print(f"dlcb report: {text}", file=sys.stderr, flush=True))
    modes = MODES if args.mode == "both" else (args.mode,)
    page = build_report(docs, out, models=models, batch=args.batch, modes=modes, scaling_model=scaling_model,
                        interconnect=args.interconnect.lower(), workers=args.workers,
                        weak_batches=args.weak_batch, strong_batches=args.strong_batch, say=say)
    index = out / "index.html"
    index.write_text(page.render(), encoding="utf-8")
    print(index)
    return 0


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the -o/--output directory {path}: {exc.strerror}") from None


def _load(path: Path) -> dict:
    from ..table import load

    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a table file")
    try:
        return load(path)
    except PermissionError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None


def build_report(docs: list, out: Path, *, models: list, batch: int, modes: tuple, scaling_model,
                 interconnect: str, workers: list, weak_batches: list, strong_batches: list, say) -> Page:
    """The page for the loaded tables [(path, doc)]; writes its PNGs into `out`."""
    from .. import __version__
    from ..summary import busy_runs

    loaded = [(path, doc, Table.from_json(doc, str(path))) for path, doc in docs]
    tables = [(path, table) for path, _, table in loaded]
    views = device_views(loaded)
    records = [r for _, table in tables for r in table.records]
    statuses = Counter(r.status_mark for r in records)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())) or "no records"
    page = Page("dlcb-kernels report")
    page.lead.append(f"{len(docs)} table(s): {', '.join(str(path) for path, _ in docs)}")
    page.lead.append(f"{len(views)} device(s): {'; '.join(f'{v.label} ({v.name})' for v in views) or 'none'}; "
                     f"{len(records)} record(s): {counts}")
    page.lead.append(f"generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by "
                     f"dlcb-kernels {__version__}")
    overview = page.section("overview", "Overview")
    for path, table in tables:
        if not table.records:
            overview.note(f"{path} has no records ({len(table.devices)} device(s), {len(table.runs)} run(s)): "
                          "the sections below have nothing of it to show but its provenance")
        for warning in busy_runs(table):
            overview.note(f"{path.name}: {warning}")
    overview.paragraph("Every figure is also written beside this page as a PNG file; each section says what "
                       "the tables lack for it. Records that are not ok (failed, error, unavailable, skipped) "
                       "are listed in the achieved-vs-peak section with their reason.")
    overview.paragraph(NOISE_LEGEND)

    _roofline_section(page.section("roofline", "Rooflines"), views, out)
    _peak_section(page.section("peak", "Achieved vs peak"), views, out)
    _speedup_section(page.section("vendor", "Ours vs the best vendor"), views, out)
    _devices_section(page.section("devices", "Devices side by side"), views, out)
    kernels = {}
    _prediction_section(page.section("predictions", "Predicted model step times"), views, out, models, batch,
                        modes, kernels, say)
    _scaling_section(page.section("scaling", "Data-parallel scaling"), views, out, scaling_model, interconnect,
                     workers, weak_batches, strong_batches, kernels, say)
    _communication_section(page.section("communication", "Communication"), tables, out)
    _provenance_section(page.section("provenance", "Provenance"), tables)
    return page


# Devices --------------------------------------------------------------------------------------------

def device_views(loaded: list) -> list:
    """One view per device of every file [(path, doc, its Table)]; a device id seen in several
    files is labelled with the file's name too (two runs of one machine are compared like two
    devices)."""
    pairs = [(path, table, device) for path, _, table in loaded for device in table.devices]
    id_count = Counter(device.id for *_, device in pairs)
    views, labels, slugs = [], set(), set()
    for path, table, device in pairs:
        label = device.id if id_count[device.id] == 1 else f"{device.id} ({path.stem})"
        label = _unique(label, labels, " #")
        slug = _unique(re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "device", slugs, "-")
        own = dataclasses.replace(table.on_device(device.id), devices=(device,))
        views.append(DeviceView(label, slug, path, device, own, own.to_json()))  # JSON for the predictor
    return views


def _unique(name: str, taken: set, joiner: str) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}{joiner}{n}"
    taken.add(candidate)
    return candidate


def _family(record: Record) -> str:
    """The op family a record is grouped and coloured by: the op, and its direction if it has one."""
    return record.op if record.direction == "-" else f"{record.op} {record.direction}"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _row_labeller(records: list):
    """Row label of a record: its problem, plus dtype and cache where the records hold several."""
    dtypes = {r.dtype for r in records}
    caches = {r.cache for r in records}

    def label(record: Record) -> str:
        parts = [record.problem]
        if len(dtypes) > 1 and record.dtype not in record.problem:
            parts.append(record.dtype)
        if len(caches) > 1:
            parts.append(f"{record.cache} cache")
        return ", ".join(parts)
    return label


def _ok(records) -> list:
    return [r for r in records if r.ok]


# Noise ------------------------------------------------------------------------------------------------

def inverse_time_interval(value: float, median, q1, q3) -> tuple | None:
    """The range of a quantity inversely proportional to a measured time (work / time: GFLOP/s,
    % of peak, bandwidth) over the time's quartiles: value·median/q3 .. value·median/q1; None
    without quartiles."""
    if not all(_number(t) and t > 0 for t in (median, q1, q3)):
        return None
    return value * median / q3, value * median / q1


def throughput_interval(value: float, record: Record) -> tuple | None:
    """inverse_time_interval of a value computed from the record's median time."""
    stats = record.stats
    return inverse_time_interval(value, stats.median, stats.q1, stats.q3) if stats else None


def speedup_interval(ours: Record, vendor: Record | None) -> tuple | None:
    """The range of vendor time / our time over both records' quartiles: vendor q1 / ours q3 ..
    vendor q3 / ours q1; None without the vendor record or quartiles."""
    if vendor is None or ours.stats is None or vendor.stats is None:
        return None
    times = (ours.stats.q1, ours.stats.q3, vendor.stats.q1, vendor.stats.q3)
    if not all(_number(t) and t > 0 for t in times):
        return None
    ours_q1, ours_q3, vendor_q1, vendor_q3 = times
    return vendor_q1 / ours_q3, vendor_q3 / ours_q1


def noise_mark(*records: Record) -> str:
    """The shaky marks of a value built on these records: ~ (one missed its noise target), *
    (the machine disturbed one: contended, slowed or throttled), both, or ""."""
    return ((SHAKY_MARK if any(r.unconverged for r in records) else "")
            + (CONTENDED_MARK if any(r.disturbed for r in records) else ""))


def _factor_interval(value: float, uncertainty) -> tuple | None:
    """A relative uncertainty u as the factor range value / (1 + u) .. value · (1 + u): never
    below zero, symmetric on a log axis."""
    return (value / (1 + uncertainty), value * (1 + uncertainty)) if _number(uncertainty) and uncertainty else None


def _shaky_count(records, how: str) -> str:
    """A caption's note of the shaky records among those drawn, and how they are drawn."""
    shaky = sum(r.shaky for r in records)
    return f"; {shaky} shaky ({how})" if shaky else ""


# Sections --------------------------------------------------------------------------------------------

def _roofline_section(section: Section, views: list, out: Path) -> None:
    from ..devices import DTYPE_ALIASES

    section.paragraph("Each ok record at its arithmetic intensity (FLOP per byte moved, counted by the problem) "
                      "and achieved GFLOP/s, with the GFLOP/s range of its timing's quartiles; circles are our "
                      "kernels, triangles vendor libraries, colours the op family, hollow markers shaky records. "
                      "Solid lines: measured compute peak and memory bandwidth; dashed: theoretical.")
    if not views:
        section.note("The tables hold no devices.")
    for view in views:
        ok = _ok(view.records)
        placed = [r for r in ok if _number(r.arithmetic_intensity) and _number(r.gflops)
                  and r.arithmetic_intensity > 0 and r.gflops > 0]
        if len(placed) < len(ok):
            section.note(f"{view.label}: {len(ok) - len(placed)} ok record(s) lack a positive arithmetic "
                         "intensity or GFLOP/s and are not placed.")
        if not placed:
            section.note(f"{view.label} ({view.name}): no ok records to place on a roofline.")
            continue
        for dtype in sorted({r.dtype for r in placed}):
            chosen = [r for r in placed if r.dtype == dtype]
            ceilings, missing = _ceilings(view.device, DTYPE_ALIASES.get(dtype, dtype))
            points = [figures.RooflinePoint(r.arithmetic_intensity, r.gflops, _family(r), r.provider,
                                            throughput_interval(r.gflops, r), r.shaky) for r in chosen]
            path = figures.roofline(points, ceilings, out / f"roofline-{view.slug}-{dtype}.png",
                                    f"{view.label} ({view.name}), {dtype}")
            ours = sum(p.provider == "ours" for p in points)
            section.figure(path, f"Roofline of {view.label} ({view.name}), {dtype}: {len(points)} ok records, "
                                 f"{ours} ours and {len(points) - ours} vendor{_shaky_count(chosen, 'hollow')}.")
            for text in missing:
                section.note(f"{view.label}, {dtype}: {text}")


def _ceilings(device: Device, peak_dtype: str) -> tuple:
    """The device block's roofs for a dtype, and what it lacks, said in words."""
    ceilings, missing = [], []
    peak = device.peaks.get(peak_dtype)
    if peak is None:
        missing.append(f"the device block has no {peak_dtype} peak: no compute ceiling")
    else:
        if _number(peak.get("measured_gflops")):
            ceilings.append(figures.Ceiling("compute", peak["measured_gflops"], True,
                                            f"{peak_dtype} measured peak {peak['measured_gflops']:.4g} GFLOP/s"))
        else:
            missing.append(f"no measured {peak_dtype} peak ({peak.get('no_measured_reason') or 'not recorded'})")
        if _number(peak.get("theoretical_gflops")):
            ceilings.append(figures.Ceiling("compute", peak["theoretical_gflops"], False,
                                            f"{peak_dtype} theoretical peak {peak['theoretical_gflops']:.4g} "
                                            f"GFLOP/s"))
        else:
            missing.append(f"no theoretical {peak_dtype} peak ({peak.get('reason') or 'not recorded'})")
    memory = device.get("memory") or {}
    for key, what, measured in _BANDWIDTH_FIELDS:
        if _number(memory.get(key)) and memory[key] > 0:
            ceilings.append(figures.Ceiling("memory", memory[key], measured,
                                            f"memory {what} {memory[key]:.4g} GB/s"))
    if not any(c.kind == "memory" and c.measured for c in ceilings):
        missing.append("no measured memory bandwidth (memory.triad_gbs or copy_gbs)")
    if not any(c.kind == "memory" and not c.measured for c in ceilings):
        missing.append("no theoretical memory bandwidth (memory.bandwidth_gbs; CPU blocks carry only the "
                       "measured STREAM triad)")
    return ceilings, missing


def _family_panels(records: list, value, interval, flag, mark=None, row_suffix=None) -> list:
    """BarPanels, one per op family: rows are problems, series the implementations' variants;
    value(record) is the bar (None: none), interval(record) its error bar, flag(record) its shaky
    mark and mark(record) the text shown instead of a bar."""
    label = _row_labeller(records)
    panels = []
    for family in dict.fromkeys(_family(r) for r in records):
        chosen = [r for r in records if _family(r) == family]
        rows = list(dict.fromkeys(label(r) for r in chosen))
        series = list(dict.fromkeys(r.variant for r in chosen))
        values, intervals, flags, marks = ({s: [None] * len(rows) for s in series} for _ in range(4))
        for r in chosen:
            i, s = rows.index(label(r)), r.variant
            v = value(r)
            if v is not None:
                values[s][i], intervals[s][i], flags[s][i] = v, interval(r), flag(r)
            elif mark is not None:
                marks[s][i] = mark(r)
        if row_suffix is not None:
            suffixes = {label(r): row_suffix(r) for r in chosen if row_suffix(r)}
            rows = [f"{row}{suffixes.get(row, '')}" for row in rows]
        panels.append(figures.BarPanel(family, rows, values, marks, intervals, flags))
    return panels


def _percent_of_peak(record: Record):
    return record.percent_of_peak if record.ok and _number(record.percent_of_peak) else None


def _percent_of_peak_interval(record: Record):
    return throughput_interval(record.percent_of_peak, record)


def _why_no_percent(record: Record) -> str:
    return record.status if not record.ok else "no peak"


def _peak_section(section: Section, views: list, out: Path) -> None:
    section.paragraph("Percent of the peak each record is held against (the record's own peak: measured unless "
                      "the run asked for the theoretical one), per problem and implementation, grouped by op "
                      "family, with the range of its timing's quartiles. Implementations without a bar on a "
                      "problem are labelled with their status.")
    for view in views:
        if not view.records:
            section.note(f"{view.label} ({view.name}): no records.")
            continue
        panels = _family_panels(view.records, _percent_of_peak, _percent_of_peak_interval, noise_mark,
                                _why_no_percent)
        path = figures.bar_panels(panels, out / f"peak-{view.slug}.png", f"{view.label} ({view.name}): % of peak",
                                  "% of peak")
        ok = _ok(view.records)
        labels = sorted({(r.peak or {}).get("label") for r in ok} - {None})
        section.figure(path, f"Achieved vs peak on {view.label} ({view.name}); peaks: "
                             f"{'; '.join(labels) or 'none recorded'}{_shaky_count(ok, 'hatched')}.")
    not_ok = [(view, r) for view in views for r in view.records if not r.ok]
    section.heading("Records that are not ok")
    if not not_ok:
        section.paragraph("Every record is ok." if any(v.records for v in views) else "There are no records.")
        return
    section.table(("device", "problem", "implementation", "dtype", "cache", "status", "reason"),
                  [(view.label, r.problem, r.implementation, r.dtype, r.cache, r.status,
                    r.reason or "(no reason recorded)") for view, r in not_ok])


def _vendor_finder(records):
    """The vendor record an ok record of ours was compared with: same run, problem, dtype and cache."""
    by_key = {(r.run_id, r.problem, r.implementation, r.dtype, r.cache): r for r in records}
    return lambda ours: by_key.get((ours.run_id, ours.problem, ours.vs_best_vendor.implementation, ours.dtype,
                                    ours.cache))


def _speedup_section(section: Section, views: list, out: Path) -> None:
    from ..summary import speedup_geomeans_with_noise

    section.paragraph("Our speed against the best vendor implementation measured on the same problem (> 1: ours "
                      "faster), log scale, with the range of both timings' quartiles, and the geometric mean per "
                      "implementation, set, direction and cache; a pair is shaky when either record is.")
    geomeans = []
    for view in views:
        compared = [r for r in _ok(view.records) if r.vs_best_vendor is not None]   # the schema: speedup > 0
        ours_alone = [r for r in _ok(view.records) if r.provider == "ours" and r.vs_best_vendor is None]
        if ours_alone:
            section.note(f"{view.label}: {len(ours_alone)} ok record(s) of ours have no ok vendor record of "
                         "the same problem to compare with.")
        if not compared:
            section.note(f"{view.label} ({view.name}): no record compares ours with a vendor.")
            continue
        vendor_of = _vendor_finder(view.records)

        def pair_mark(ours, vendor_of=vendor_of):
            vendor = vendor_of(ours)
            return noise_mark(ours) if vendor is None else noise_mark(ours, vendor)

        panels = _family_panels(compared, lambda r: r.vs_best_vendor.speedup,
                                lambda r, vendor_of=vendor_of: speedup_interval(r, vendor_of(r)), pair_mark,
                                row_suffix=lambda r: f" vs {r.vs_best_vendor.variant}")
        path = figures.bar_panels(panels, out / f"speedup-{view.slug}.png",
                                  f"{view.label} ({view.name}): ours vs the best vendor", "speedup (x, log scale)",
                                  log_scale=True, reference=1.0)
        shaky = sum(bool(pair_mark(r)) for r in compared)
        section.figure(path, f"Ours vs the best vendor on {view.label} ({view.name}), per problem"
                             f"{f'; {shaky} shaky pair(s) (hatched)' if shaky else ''}.")
        for (impl, set_name, direction, cache), (mean, count, unsure, steady) in sorted(
                speedup_geomeans_with_noise(view.table).items()):
            geomeans.append((view.label, impl, set_name, direction, cache, f"x{mean:.3f}", count, unsure,
                             "-" if not unsure else f"x{steady:.3f}" if steady is not None else "none steady"))
    if geomeans:
        section.heading("Geometric means")
        section.table(("device", "implementation", "set", "direction", "cache", "geomean speedup", "problems",
                       "shaky pairs", "geomean of the steady pairs"), geomeans, numeric=(5, 6, 7, 8))


def _devices_section(section: Section, views: list, out: Path) -> None:
    with_records = [v for v in views if _ok(v.records)]
    if len(with_records) < 2:
        section.note(f"The tables hold {len(with_records)} device(s) with ok records "
                     f"({', '.join(v.label for v in with_records) or 'none'}): a side-by-side comparison needs "
                     "two or more (pass the tables of several devices, or runs of several machines).")
        return
    section.paragraph("The problems measured ok on two or more devices: per device the best implementation's "
                      "GFLOP/s, and our best implementation's, with the range of its timing's quartiles.")
    best, ours = {}, {}
    for view in with_records:
        for r in _ok(view.records):
            if not _number(r.gflops) or r.gflops <= 0:
                continue
            key = (_family(r), r.problem, r.dtype, r.cache)
            for table, keep in ((best, True), (ours, r.provider == "ours")):
                held = table.setdefault(key, {}).get(view.label)
                if keep and (held is None or r.gflops > held.gflops):
                    table[key][view.label] = r
    common = [key for key, per_view in best.items() if len(per_view) >= 2]
    if not common:
        section.note("No problem was measured ok on two or more devices: nothing to put side by side.")
        return
    dtypes = {key[2] for key in common}
    caches = {key[3] for key in common}

    def row(key):
        _, problem, dtype, cache = key
        extra = ([dtype] if len(dtypes) > 1 and dtype not in problem else []) + (
            [f"{cache} cache"] if len(caches) > 1 else [])
        return ", ".join([problem, *extra])

    labels = [v.label for v in with_records]
    panels = []
    drawn = {}   # the records behind the bars, by identity: one can be both the best and ours
    for which, table in (("best implementation", best), ("ours", ours)):
        for family in dict.fromkeys(key[0] for key in common):
            keys = [k for k in common if k[0] == family and table.get(k)]
            if not keys:
                continue
            chosen = {label: [table[k].get(label) for k in keys] for label in labels}
            drawn.update((id(r), r) for records in chosen.values() for r in records if r is not None)
            panels.append(figures.BarPanel(
                f"{family}: {which}", [row(k) for k in keys],
                values={label: [r.gflops if r else None for r in records] for label, records in chosen.items()},
                marks={label: [None if r else "not measured" for r in records] for label, records in chosen.items()},
                intervals={label: [throughput_interval(r.gflops, r) if r else None for r in records]
                           for label, records in chosen.items()},
                flags={label: [noise_mark(r) if r else None for r in records] for label, records in chosen.items()}))
    log_scale = _spans_decades(panels)
    path = figures.bar_panels(panels, out / "devices.png", "Devices side by side",
                              "GFLOP/s (log scale)" if log_scale else "GFLOP/s", log_scale=log_scale)
    section.figure(path, f"{len(common)} problem(s) measured on two or more of {len(labels)} devices"
                         f"{_shaky_count(drawn.values(), 'hatched')}.")
    section.table(("problem", *(f"{label}: best (implementation)" for label in labels)),
                  [(row(k), *(_gflops_text(best[k][label]) if label in best[k] else None for label in labels))
                   for k in common])


def _gflops_text(record: Record) -> str:
    """GFLOP/s with its quartile range and the variant, marked where shaky."""
    interval = throughput_interval(record.gflops, record)
    spread = f" [{interval[0]:.4g}–{interval[1]:.4g}]" if interval else ""
    return f"{record.gflops:.4g}{spread} GFLOP/s ({record.variant}{noise_mark(record)})"


def _spans_decades(panels: list) -> bool:
    """Whether the bars' values span more than a factor 20: a log scale then, else a linear one
    (where small differences stay visible)."""
    values = [v for p in panels for vs in p.values.values() for v in vs if v is not None and v > 0]
    return bool(values) and max(values) / min(values) > 20


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.4g}" if ms < 1e4 else f"{ms:,.0f}"


def _view_dtype(view: DeviceView) -> str:
    """The dtype the predictor reads a device in: float32 where it has ok float32 records, else
    the dtype with the most ok records."""
    ok = _ok(view.records)
    dtypes = [r.dtype for r in ok]
    if not dtypes or "float32" in dtypes:
        return "float32"
    return max(set(dtypes), key=dtypes.count)


def _kernel_model(view: DeviceView, cache: dict):
    """The view's ThroughputModel (best implementation per problem), built once; or the reason
    there is none."""
    from ..predict import ThroughputModel

    if view.label not in cache:
        try:
            cache[view.label] = ThroughputModel(view.doc, device_id=view.device.id, impl="best",
                                                dtype=_view_dtype(view))
        except _PREDICTION_ERRORS as exc:
            cache[view.label] = str(exc)
    return cache[view.label]


def _prediction_section(section: Section, views: list, out: Path, models: list, batch: int, modes: tuple,
                        kernels: dict, say) -> None:
    from ..predict import predict_model

    if not models:
        section.note("No models were asked for (--models none).")
        return
    section.paragraph(f"Step time and throughput of reference models at batch {batch}, predicted from each "
                      "device's table (per kernel the best implementation's record, a fitted efficiency model "
                      "or the roofline; memory-bound layers from measured calls or bandwidth). ± is the predictor's "
                      "relative uncertainty u; the error bars span samples/s ÷ (1 + u) to × (1 + u).")
    results, failures = [], []
    for view in views:
        model_kernels = _kernel_model(view, kernels)
        for mode in modes:
            for model in models:
                if isinstance(model_kernels, str):
                    failures.append((model.name, view.label, mode, model_kernels))
                    continue
                say(f"predicting {model.name} ({_MODE_TITLES[mode]}, batch {batch}) on {view.label}")
                try:
                    results.append((view, mode, predict_model(model, model_kernels, batch=batch, mode=mode)))
                except _PREDICTION_ERRORS as exc:
                    failures.append((model.name, view.label, mode, f"{type(exc).__name__}: {exc}"))
    labels = [v.label for v in views]
    panels = []
    for mode in modes:
        values = {label: [None] * len(models) for label in labels}
        intervals = {label: [None] * len(models) for label in labels}
        marks = {label: [None] * len(models) for label in labels}
        for view, result_mode, pred in results:
            if result_mode == mode and _number(pred.throughput) and pred.throughput > 0:
                i = [m.name for m in models].index(pred.model)
                values[view.label][i] = pred.throughput
                intervals[view.label][i] = _factor_interval(pred.throughput, pred.uncertainty)
        for name, label, failed_mode, _ in failures:
            if failed_mode == mode:
                marks[label][[m.name for m in models].index(name)] = "cannot predict (see the table)"
        panels.append(figures.BarPanel(f"{_MODE_TITLES[mode]}, batch {batch}", [m.name for m in models], values,
                                       marks, intervals))
    if results:
        log_scale = _spans_decades(panels)
        path = figures.bar_panels(panels, out / "predictions.png", "Predicted throughput per device",
                                  "samples/s (log scale)" if log_scale else "samples/s", log_scale=log_scale)
        section.figure(path, f"Predicted samples/s of {len(models)} model(s) on {len(views)} device(s), "
                             f"batch {batch}.")
        rows = []
        for view, mode, pred in results:
            sources = pred.source_seconds()
            where = ", ".join(f"{name} {seconds / pred.step_seconds:.0%}" for name, seconds in sources.items()
                              if seconds > 0 and pred.step_seconds > 0)
            rows.append((pred.model, view.label, _MODE_TITLES[mode], pred.batch, pred.dtype,
                         _ms(pred.step_seconds), f"{pred.throughput:.4g}", f"±{pred.uncertainty:.0%}",
                         where))
        section.table(("model", "device", "mode", "batch", "dtype", "step ms", "samples/s", "uncertainty",
                       "time from"), rows, numeric=(3, 5, 6, 7))
    else:
        section.note("No prediction succeeded on any device.")
    if failures:
        section.heading("Predictions that could not be made")
        section.table(("model", "device", "mode", "reason"), failures)


def _scaling_section(section: Section, views: list, out: Path, model, preset: str, workers: list,
                     weak_batches: list, strong_batches: list, kernels: dict, say) -> None:
    from ..predict import predict_model
    from ..predict.plot import plot_scaling
    from ..predict.scaling import INTERCONNECTS, data_parallel, interconnect_from_table

    if model is None:
        section.note("No scaling model was asked for (--scaling-model none).")
        return
    section.paragraph(f"Synchronous data-parallel training of {model.name} over {', '.join(map(str, workers))} "
                      "workers, each worker's step predicted from the device's table, the gradient all-reduce "
                      "(ring) overlapped with the backward layer by layer. Weak scaling keeps the per-worker "
                      "batch, strong scaling splits a global batch.")
    if not views:
        section.note("The tables hold no devices.")
    for view in views:
        model_kernels = _kernel_model(view, kernels)
        if isinstance(model_kernels, str):
            section.note(f"{view.label} ({view.name}): cannot predict {model.name}: {model_kernels}")
            continue
        try:
            link = interconnect_from_table(view.doc)
            why = "measured in the table"
        except ValueError as exc:
            link = INTERCONNECTS[preset]
            # the error's first clause says why; the rest repeats the presets
            why = f"preset --interconnect {preset}: {str(exc).split(' (')[0]}"
        section.heading(f"{view.label} ({view.name})")
        section.paragraph(f"Interconnect {link.name}: α = {link.alpha_s * 1e6:.3g} µs, β = "
                          f"{link.beta_bytes_per_s / 1e9:.3g} GB/s per direction ({why}); {link.source.rstrip('.')}.")

        steps = {}   # weak and strong scaling ask for some of the same batches

        def step(batch, view=view, model_kernels=model_kernels, steps=steps):
            if batch not in steps:
                say(f"predicting {model.name} (training step, batch {batch}) on {view.label} for scaling")
                steps[batch] = predict_model(model, model_kernels, batch=batch, mode="train")
            return steps[batch]

        for scaling, batches in (("weak", weak_batches), ("strong", strong_batches)):
            try:
                rows = data_parallel(step, workers, batches, link, scaling=scaling)
            except _PREDICTION_ERRORS as exc:
                section.note(f"{scaling} scaling of {model.name} on {view.label} cannot be predicted: "
                             f"{type(exc).__name__}: {exc}")
                continue
            path = plot_scaling(rows, out / f"scaling-{scaling}-{view.slug}.png",
                                f"{model.name} on {view.label}, {scaling} scaling, {link.name}", scaling=scaling)
            largest = max(rows, key=lambda r: (r.workers, r.global_batch if scaling == "strong" else r.batch))
            section.figure(path, f"{scaling.capitalize()} scaling of {model.name} on {view.label}: batch time "
                                 f"against workers; at {largest.workers} workers and "
                                 f"{'global' if scaling == 'strong' else 'per-worker'} batch "
                                 f"{largest.global_batch if scaling == 'strong' else largest.batch}: speedup "
                                 f"{largest.speedup:.2f}, efficiency {largest.efficiency:.0%}.")


def _communication_section(section: Section, tables: list, out: Path) -> None:
    """`dlcb bench comm`'s measurements: bus bandwidth against size per collective, all-reduce time
    with its α-β fits over it, and the fits' errors; one group per (file, backend, rank count)."""
    groups = [(path, table, key, entries) for path, table in tables
              for key, entries in _by_backend_and_ranks(table.communication.get("measurements", []))]
    if not groups:
        section.note("No table holds communication measurements (`mpirun -n P dlcb bench comm` makes them).")
        return
    section.paragraph("Collectives timed by `dlcb bench comm` on every rank: the slowest rank's median time per "
                      "collective with its quartiles as error bars (hollow: stopped before its noise target), bus "
                      "bandwidth with the nccl-tests definitions, and the α-β fits (one line, dashed; size regimes, "
                      "dotted) with their relative errors.")
    for path, table, (backend, ranks), entries in groups:
        fits = [f for f in table.communication.get("fits", [])
                if f.get("backend") == backend and f.get("ranks") == ranks]
        _communication_group(section, f"{backend}, {ranks} rank(s), {path.stem}", ranks, entries, fits, out)


def _by_backend_and_ranks(measurements: list) -> list:
    groups: dict = {}
    for entry in measurements:
        groups.setdefault((entry.get("backend", "?"), entry["ranks"]), []).append(entry)
    return list(groups.items())


def _quartiles(entry: dict) -> tuple:
    """A collective timing's median, q1 and q3 in seconds (None where not written)."""
    stats = entry.get("stats") or {}
    return stats.get("median"), stats.get("q1"), stats.get("q3")


def _time_interval_us(entry: dict) -> tuple | None:
    _, q1, q3 = _quartiles(entry)
    return (q1 * 1e6, q3 * 1e6) if _number(q1) and _number(q3) else None


def _communication_group(section: Section, label: str, ranks: int, entries: list, fits: list, out: Path) -> None:
    from ..comm.collectives import format_bytes
    from ..comm.fit import Line, Regimes

    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    section.heading(label)
    ok = [e for e in entries if e["status"] == "ok"]
    bad = [e for e in entries if e["status"] != "ok"]
    if bad:
        section.table(["collective", "size", "status", "reason"],
                      [[e["collective"], format_bytes(e["nbytes"]), e["status"], e.get("reason") or ""]
                       for e in bad])
    series = []
    for collective in dict.fromkeys(e["collective"] for e in ok):
        chosen = sorted((e for e in ok if e["collective"] == collective), key=lambda e: e["nbytes"])
        if ranks > 1 or collective == "broadcast":
            series.append(figures.Series(
                collective, [e["nbytes"] for e in chosen], [e["busbw_gbs"] for e in chosen],
                intervals=[inverse_time_interval(e["busbw_gbs"], *_quartiles(e)) for e in chosen],
                shaky=[e.get("converged") is False for e in chosen]))
    if series:
        chart = figures.line_chart(series, out / f"comm-busbw-{slug}.png", f"bus bandwidth, {label}",
                                   "message size (bytes)", "busbw (GB/s)")
        section.figure(chart, f"Bus bandwidth against message size, {label}.")
    else:
        section.note(f"{label}: one rank moves nothing between ranks; no bandwidth to draw.")
    allreduce = sorted((e for e in ok if e["collective"] == "allreduce"), key=lambda e: e["nbytes"])
    fit = next((f for f in fits if f["collective"] == "allreduce"), None)
    if allreduce and fit:
        sizes = [e["nbytes"] for e in allreduce]
        line = Line(fit["latency_s"], fit["seconds_per_byte"], *fit["fit_range_bytes"])
        regimes = Regimes.from_entries(fit["regimes"])
        chart = figures.line_chart(
            [figures.Series("allreduce measured", sizes, [e["stats"]["median"] * 1e6 for e in allreduce],
                            intervals=[_time_interval_us(e) for e in allreduce],
                            shaky=[e.get("converged") is False for e in allreduce]),
             figures.Series("allreduce α-β line", sizes, [float(v) * 1e6 for v in line.predict(sizes)], "--"),
             figures.Series("allreduce regimes", sizes, [float(v) * 1e6 for v in regimes.predict(sizes)], ":")],
            out / f"comm-allreduce-fit-{slug}.png", f"all-reduce time and its fits, {label}",
            "message size (bytes)", "time (µs)")
        section.figure(chart, f"All-reduce time against size with the fitted line and regimes "
                              f"(fitted on {format_bytes(fit['fit_range_bytes'][0])}–"
                              f"{format_bytes(fit['fit_range_bytes'][1])}), {label}.")
    if fits:
        section.table(
            ["collective", "α (µs)", "β (GB/s)", "model", "regimes", "line: max / median error",
             "line: leave-one-out median", "regimes: median error", "regimes: within 10 %"],
            [[f["collective"], f"{f['alpha_s'] * 1e6:.3g}",
              f"{f['beta_bytes_per_s'] / 1e9:.3g}" if f.get("beta_bytes_per_s") else "-", f["model"],
              len(f["regimes"]),
              f"{f['errors']['in_sample']['max']:.0%} / {f['errors']['in_sample']['median']:.0%}",
              f"{f['errors']['leave_one_out']['median']:.0%}",
              f"{f['regime_errors']['in_sample']['median']:.0%}",
              f"{f['regime_errors']['in_sample']['within_10pct']:.0%} of sizes"] for f in fits],
            numeric=(1, 2, 4))
    elif ranks > 1:
        section.note(f"{label}: no α-β fits in the table (fewer than four sizes in the fit range).")


def _provenance_section(section: Section, tables: list) -> None:
    section.paragraph("Where every number comes from: the runs (command line, software, settings) and the devices "
                      "(clocks, peaks, bandwidth) of each table.")
    for path, table in tables:
        for run in table.runs:
            section.heading(f"Run {run.run_id[:8]} of {path.name}")
            section.key_values(_run_rows(run, path))
        if not table.runs:
            section.note(f"{path} records no runs.")
        for device in table.devices:
            section.heading(f"Device {device.id} of {path.name}")
            section.key_values(_device_rows(device))


def _compact(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


_ENVIRONMENT_KEYS = ("command", "packages", "build_revision", "python", "implementation", "platform", "hostname",
                     "blas", "compiler", "openmp_max_threads", "env", "cuda")


def _run_rows(run: Run, path: Path) -> list:
    env = run.environment
    packages = dict(env.get("packages") or {})
    dlcb = packages.pop("dlcb-kernels", None)
    command = env.get("command")
    blas = "; ".join(f"{b.get('internal_api', '?')} {b.get('version', '?')} ({b.get('architecture', '?')}, "
                     f"{b.get('threading_layer', '?')}, {b.get('num_threads', '?')} threads)"
                     for b in env.get("blas") or [] if isinstance(b, dict))
    timer = run.harness.get("timer")
    overhead = (run.harness.get("overhead_s") or {}).get("median")
    rows = [
        ("table file", str(path)), ("run id", run.run_id), ("suite", run.suite),
        ("status", run.status), ("started", run.started), ("finished", run.finished),
        ("command line", shlex.join(map(str, command)) if isinstance(command, list) else command),
        ("threads", run.threads), ("caches", ", ".join(map(str, run.caches)) or None),
        ("rounds", run.rounds),
        ("dlcb-kernels", (f"{dlcb or '?'} (build {env.get('build_revision') or '?'}, "
                         f"compiler {env.get('compiler') or '?'})")),
        ("Python", f"{env.get('implementation') or ''} {env.get('python') or '?'}".strip()),
        ("platform", env.get("platform")), ("hostname", env.get("hostname")),
        ("libraries", ", ".join(f"{name} {version}" for name, version in sorted(packages.items())) or None),
        ("BLAS", blas or None),
        ("OpenMP threads", env.get("openmp_max_threads")),
        ("environment variables", " ".join(f"{k}={v}" for k, v in sorted((env.get("env") or {}).items())) or None),
        ("timer", f"{timer}, overhead median {overhead * 1e9:.0f} ns" if _number(overhead) else timer),
        ("sampler settings", _compact(run.settings) if run.settings else None),
        ("machine at start", _compact(run.machine_at_start) if run.machine_at_start else None),
    ]
    if env.get("cuda"):
        rows.append(("CUDA", _compact(env["cuda"])))
    # whatever else the run carries (an MPI job's rank and host, fields of later versions)
    rows += [(key, v if isinstance(v, (str, int, float)) else _compact(v)) for key, v in run.extra.items()]
    rows += [(f"environment.{key}", v if isinstance(v, (str, int, float)) else _compact(v))
             for key, v in env.items() if key not in _ENVIRONMENT_KEYS]
    return rows


def _device_rows(device: Device) -> list:
    rows = [("id", device.id), ("name", device.name), ("kind", device.kind),
            ("hostname", device.get("hostname") or device.get("host"))]
    if device.kind == "cpu":
        clock = device.get("clock") or {}
        hypervisor = device.get("hypervisor")
        rows += [
            ("microarchitecture", (f"{device.get('microarchitecture') or 'unknown'} ({device.get('vendor')}, "
                                  f"{device.get('arch')}, family {device.get('family')} model {device.get('model')})")),
            ("cores", (f"{device.get('physical_cores')} physical, {device.get('logical_cpus')} logical, "
                      f"{device.get('threads_used')} threads used")),
            ("clock", f"measured {clock['measured_ghz']:.3f} GHz" if _number(clock.get("measured_ghz"))
             else "not measured"),
            ("clock reported / max", " / ".join(f"{clock[k]:g} MHz" if _number(clock.get(k)) else "not reported"
                                                for k in ("reported_mhz", "max_mhz"))),
            ("clock note", clock.get("note")),
            ("hypervisor", f"{hypervisor.get('vendor') or 'unknown'} ({hypervisor.get('source')})"
             if isinstance(hypervisor, dict) else "none detected"),
            ("ISA", ", ".join((device.get("isa") or {}).get("flags") or []) or None),
            ("caches", ", ".join(f"{level.upper()} {info['bytes'] // 1024} KiB x{info.get('instances')}"
                                 for level, info in (device.get("caches") or {}).items()
                                 if isinstance(info, dict) and _number(info.get("bytes"))) or None),
        ]
    else:
        nvml = device.get("nvml") or {}
        rows += [
            ("architecture", (f"{device.get('architecture') or 'unknown'} (compute capability "
                             f"{device.get('compute_capability')}, {device.get('sm_count')} SMs)")),
            ("max SM clock", f"{device.get('max_sm_clock_mhz')} MHz"),
            ("NVML", _compact(nvml) if nvml else "not recorded"),
            ("notes", " / ".join(map(str, device.get("notes") or [])) or None),
        ]
    for dtype, peak in device.peaks.items():
        if not isinstance(peak, dict):
            continue
        theoretical = (f"theoretical {peak['theoretical_gflops']:.4g} GFLOP/s ({peak.get('theoretical_formula')})"
                       if _number(peak.get("theoretical_gflops")) else f"no theoretical peak ({peak.get('reason')})")
        measured = (f"measured {peak['measured_gflops']:.4g} GFLOP/s ({peak.get('measured_summary')})"
                    if _number(peak.get("measured_gflops")) else
                    f"not measured ({peak.get('no_measured_reason') or 'no probe'})")
        rows.append((f"{dtype} peak", f"{theoretical}; {measured}"))
    memory = device.get("memory") or {}
    for key, what, _ in _BANDWIDTH_FIELDS:
        if _number(memory.get(key)):
            rows.append((f"memory bandwidth ({what})", f"{memory[key]:.4g} GB/s"))
    if _number(memory.get("total_bytes")):
        rows.append(("memory", f"{memory['total_bytes'] / 2**30:.1f} GiB"))
    for key in ("ranks", "mpi_rank", "host", "pci_bus_id", "index"):
        if key in device.extra:
            value = device.get(key)
            rows.append((key, value if isinstance(value, (str, int, float)) else _compact(value)))
    return rows
