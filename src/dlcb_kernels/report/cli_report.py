"""`dlcb report`: one self-contained HTML page (plus its PNGs) from one or several throughput
tables: rooflines, % of peak, ours against the best vendor, devices side by side, predicted model
step times, data-parallel scaling, communication benchmarks and the runs' provenance."""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..argtypes import positive_int, positive_int_list
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
    device: dict
    doc: dict        # a table of the file's runs, this device, its records and the file's communication

    @property
    def records(self) -> list:
        return self.doc["records"]

    @property
    def name(self) -> str:
        return str(self.device.get("name") or "unnamed device")


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

    views = device_views(docs)
    records = [r for _, doc in docs for r in doc["records"]]
    statuses = {}
    for record in records:
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())) or "no records"
    page = Page("dlcb-kernels report")
    page.lead.append(f"{len(docs)} table(s): {', '.join(str(path) for path, _ in docs)}")
    page.lead.append(f"{len(views)} device(s): {'; '.join(f'{v.label} ({v.name})' for v in views) or 'none'}; "
                     f"{len(records)} record(s): {counts}")
    page.lead.append(f"generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by "
                     f"dlcb-kernels {__version__}")
    overview = page.section("overview", "Overview")
    for path, doc in docs:
        if not doc["records"]:
            overview.note(f"{path} has no records ({len(doc['devices'])} device(s), {len(doc['runs'])} run(s)): "
                          "the sections below have nothing of it to show but its provenance")
    overview.paragraph("Every figure is also written beside this page as a PNG file; each section says what "
                       "the tables lack for it. Records that are not ok (failed, error, unavailable, skipped) "
                       "are listed in the achieved-vs-peak section with their reason.")

    _roofline_section(page.section("roofline", "Rooflines"), views, out)
    _peak_section(page.section("peak", "Achieved vs peak"), views, out)
    _speedup_section(page.section("vendor", "Ours vs the best vendor"), views, out)
    _devices_section(page.section("devices", "Devices side by side"), views, out)
    kernels = {}
    _prediction_section(page.section("predictions", "Predicted model step times"), views, out, models, batch,
                        modes, kernels, say)
    _scaling_section(page.section("scaling", "Data-parallel scaling"), views, out, scaling_model, interconnect,
                     workers, weak_batches, strong_batches, kernels, say)
    _communication_section(page.section("communication", "Communication"), docs, out)
    _provenance_section(page.section("provenance", "Provenance"), docs)
    return page


# Devices --------------------------------------------------------------------------------------------

def device_views(docs: list) -> list:
    """One view per device of every file; a device id seen in several files is labelled with
    the file's name too (two runs of one machine are compared like two devices)."""
    pairs = [(path, doc, device) for path, doc in docs for device in doc["devices"]]
    id_count = {}
    for _, _, device in pairs:
        id_count[device["id"]] = id_count.get(device["id"], 0) + 1
    views, labels, slugs = [], set(), set()
    for path, doc, device in pairs:
        label = device["id"] if id_count[device["id"]] == 1 else f"{device['id']} ({path.stem})"
        label = _unique(label, labels, " #")
        slug = _unique(re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "device", slugs, "-")
        sub = {"schema": doc["schema"], "schema_version": doc["schema_version"], "runs": doc["runs"],
               "devices": [device], "records": [r for r in doc["records"] if r["device_id"] == device["id"]],
               "communication": doc.get("communication") or {}}
        views.append(DeviceView(label, slug, path, device, sub))
    return views


def _unique(name: str, taken: set, joiner: str) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}{joiner}{n}"
    taken.add(candidate)
    return candidate


def _family(record: dict) -> str:
    """The op family a record is grouped and coloured by: the op, and its direction if it has one."""
    direction = (record.get("params") or {}).get("direction")
    return f"{record['op']} {direction}" if direction else record["op"]


def _variant(record: dict) -> str:
    return record["implementation"].split("/")[-1]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _row_labeller(records: list):
    """Row label of a record: its problem, plus dtype and cache where the records hold several."""
    dtypes = {r["dtype"] for r in records}
    caches = {r["cache"] for r in records}

    def label(record: dict) -> str:
        parts = [record["problem"]]
        if len(dtypes) > 1 and record["dtype"] not in record["problem"]:
            parts.append(record["dtype"])
        if len(caches) > 1:
            parts.append(f"{record['cache']} cache")
        return ", ".join(parts)
    return label


def _ok(records: list) -> list:
    return [r for r in records if r["status"] == "ok"]


# Sections --------------------------------------------------------------------------------------------

def _roofline_section(section: Section, views: list, out: Path) -> None:
    from ..devices import DTYPE_ALIASES

    section.paragraph("Each ok record at its arithmetic intensity (FLOP per byte moved, counted by the problem) "
                      "and achieved GFLOP/s; circles are our kernels, triangles vendor libraries, colours the op "
                      "family. Solid lines: measured compute peak and memory bandwidth; dashed: theoretical.")
    if not views:
        section.note("The tables hold no devices.")
    for view in views:
        ok = _ok(view.records)
        placed = [r for r in ok if _number(r.get("arithmetic_intensity")) and _number(r.get("gflops"))
                  and r["arithmetic_intensity"] > 0 and r["gflops"] > 0]
        if len(placed) < len(ok):
            section.note(f"{view.label}: {len(ok) - len(placed)} ok record(s) lack a positive arithmetic "
                         "intensity or GFLOP/s and are not placed.")
        if not placed:
            section.note(f"{view.label} ({view.name}): no ok records to place on a roofline.")
            continue
        for dtype in sorted({r["dtype"] for r in placed}):
            chosen = [r for r in placed if r["dtype"] == dtype]
            ceilings, missing = _ceilings(view.device, DTYPE_ALIASES.get(dtype, dtype))
            points = [figures.RooflinePoint(r["arithmetic_intensity"], r["gflops"], _family(r),
                                            r.get("provider") or "vendor") for r in chosen]
            path = figures.roofline(points, ceilings, out / f"roofline-{view.slug}-{dtype}.png",
                                    f"{view.label} ({view.name}), {dtype}")
            ours = sum(p.provider == "ours" for p in points)
            section.figure(path, f"Roofline of {view.label} ({view.name}), {dtype}: {len(points)} ok records, "
                                 f"{ours} ours and {len(points) - ours} vendor.")
            for text in missing:
                section.note(f"{view.label}, {dtype}: {text}")


def _ceilings(device: dict, peak_dtype: str) -> tuple:
    """The device block's roofs for a dtype, and what it lacks, said in words."""
    ceilings, missing = [], []
    peak = (device.get("peaks") or {}).get(peak_dtype)
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


def _family_panels(records: list, value, mark=None, row_suffix=None) -> list:
    """BarPanels, one per op family: rows are problems, series the implementations; value(record)
    is the bar (None: none) and mark(record) the text shown instead."""
    label = _row_labeller(records)
    panels = []
    for family in dict.fromkeys(_family(r) for r in records):
        chosen = [r for r in records if _family(r) == family]
        rows = list(dict.fromkeys(label(r) for r in chosen))
        series = list(dict.fromkeys(_variant(r) for r in chosen))
        values = {s: [None] * len(rows) for s in series}
        marks = {s: [None] * len(rows) for s in series}
        for r in chosen:
            i, s = rows.index(label(r)), _variant(r)
            v = value(r)
            if v is not None:
                values[s][i] = v
            elif mark is not None:
                marks[s][i] = mark(r)
        if row_suffix is not None:
            suffixes = {label(r): row_suffix(r) for r in chosen if row_suffix(r)}
            rows = [f"{row}{suffixes.get(row, '')}" for row in rows]
        panels.append(figures.BarPanel(family, rows, values, marks))
    return panels


def _percent_of_peak(record: dict):
    return record["percent_of_peak"] if record["status"] == "ok" and _number(record.get("percent_of_peak")) else None


def _why_no_percent(record: dict) -> str:
    return record["status"] if record["status"] != "ok" else "no peak"


def _peak_section(section: Section, views: list, out: Path) -> None:
    section.paragraph("Percent of the peak each record is held against (the record's own peak: measured unless "
                      "the run asked for the theoretical one), per problem and implementation, grouped by op "
                      "family. Implementations without a bar on a problem are labelled with their status.")
    for view in views:
        if not view.records:
            section.note(f"{view.label} ({view.name}): no records.")
            continue
        panels = _family_panels(view.records, _percent_of_peak, _why_no_percent)
        path = figures.bar_panels(panels, out / f"peak-{view.slug}.png", f"{view.label} ({view.name}): % of peak",
                                  "% of peak")
        labels = sorted({(r.get("peak") or {}).get("label") for r in _ok(view.records)} - {None})
        section.figure(path, f"Achieved vs peak on {view.label} ({view.name}); peaks: "
                             f"{'; '.join(labels) or 'none recorded'}.")
    not_ok = [(view, r) for view in views for r in view.records if r["status"] != "ok"]
    section.heading("Records that are not ok")
    if not not_ok:
        section.paragraph("Every record is ok." if any(v.records for v in views) else "There are no records.")
        return
    section.table(("device", "problem", "implementation", "dtype", "cache", "status", "reason"),
                  [(view.label, r["problem"], r["implementation"], r["dtype"], r["cache"], r["status"],
                    r.get("reason") or "(no reason recorded)") for view, r in not_ok])


def _speedup_section(section: Section, views: list, out: Path) -> None:
    from ..summary import speedup_geomeans

    section.paragraph("Our speed against the best vendor implementation measured on the same problem (> 1: ours "
                      "faster), log scale, and the geometric mean per implementation, set, direction and cache.")
    geomeans = []
    for view in views:
        compared = [r for r in _ok(view.records) if isinstance(r.get("vs_best_vendor"), dict)
                    and _number(r["vs_best_vendor"].get("speedup")) and r["vs_best_vendor"]["speedup"] > 0]
        compared_ids = {id(r) for r in compared}
        ours_alone = [r for r in _ok(view.records) if r.get("provider") == "ours" and id(r) not in compared_ids]
        if ours_alone:
            section.note(f"{view.label}: {len(ours_alone)} ok record(s) of ours have no ok vendor record of "
                         "the same problem to compare with.")
        if not compared:
            section.note(f"{view.label} ({view.name}): no record compares ours with a vendor.")
            continue
        panels = _family_panels(compared, lambda r: r["vs_best_vendor"]["speedup"],
                                row_suffix=lambda r: f" vs {r['vs_best_vendor']['implementation'].split('/')[-1]}")
        path = figures.bar_panels(panels, out / f"speedup-{view.slug}.png",
                                  f"{view.label} ({view.name}): ours vs the best vendor", "speedup (x, log scale)",
                                  log_scale=True, reference=1.0)
        section.figure(path, f"Ours vs the best vendor on {view.label} ({view.name}), per problem.")
        for (impl, set_name, direction, cache), (mean, count) in sorted(speedup_geomeans(view.doc).items()):
            geomeans.append((view.label, impl, set_name, direction, cache, f"x{mean:.3f}", count))
    if geomeans:
        section.heading("Geometric means")
        section.table(("device", "implementation", "set", "direction", "cache", "geomean speedup", "problems"),
                      geomeans, numeric=(5, 6))


def _devices_section(section: Section, views: list, out: Path) -> None:
    with_records = [v for v in views if _ok(v.records)]
    if len(with_records) < 2:
        section.note(f"The tables hold {len(with_records)} device(s) with ok records "
                     f"({', '.join(v.label for v in with_records) or 'none'}): a side-by-side comparison needs "
                     "two or more (pass the tables of several devices, or runs of several machines).")
        return
    section.paragraph("The problems measured ok on two or more devices: per device the best implementation's "
                      "GFLOP/s, and our best implementation's.")
    best, ours = {}, {}
    for view in with_records:
        for r in _ok(view.records):
            if not _number(r.get("gflops")) or r["gflops"] <= 0:
                continue
            key = (_family(r), r["problem"], r["dtype"], r["cache"])
            for table, keep in ((best, True), (ours, r.get("provider") == "ours")):
                held = table.setdefault(key, {}).get(view.label)
                if keep and (held is None or r["gflops"] > held["gflops"]):
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
    for which, table in (("best implementation", best), ("ours", ours)):
        for family in dict.fromkeys(key[0] for key in common):
            keys = [k for k in common if k[0] == family and table.get(k)]
            if not keys:
                continue
            values = {label: [table[k][label]["gflops"] if label in table[k] else None for k in keys]
                      for label in labels}
            marks = {label: ["not measured" if label not in table[k] else None for k in keys] for label in labels}
            panels.append(figures.BarPanel(f"{family}: {which}", [row(k) for k in keys], values, marks))
    log_scale = _spans_decades(panels)
    path = figures.bar_panels(panels, out / "devices.png", "Devices side by side",
                              "GFLOP/s (log scale)" if log_scale else "GFLOP/s", log_scale=log_scale)
    section.figure(path, f"{len(common)} problem(s) measured on two or more of {len(labels)} devices.")
    section.table(("problem", *(f"{label}: best (implementation)" for label in labels)),
                  [(row(k), *(f"{best[k][label]['gflops']:.4g} GFLOP/s ({_variant(best[k][label])})"
                              if label in best[k] else None for label in labels)) for k in common])


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
    dtypes = [r["dtype"] for r in ok]
    if not dtypes or "float32" in dtypes:
        return "float32"
    return max(set(dtypes), key=dtypes.count)


def _kernel_model(view: DeviceView, cache: dict):
    """The view's ThroughputModel (best implementation per problem), built once; or the reason
    there is none."""
    from ..predict import ThroughputModel

    if view.label not in cache:
        try:
            cache[view.label] = ThroughputModel(view.doc, device_id=view.device["id"], impl="best",
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
        errors = {label: [None] * len(models) for label in labels}
        marks = {label: [None] * len(models) for label in labels}
        for view, result_mode, pred in results:
            if result_mode == mode and _number(pred.throughput) and pred.throughput > 0:
                i = [m.name for m in models].index(pred.model)
                values[view.label][i] = pred.throughput
                errors[view.label][i] = pred.uncertainty
        for name, label, failed_mode, _ in failures:
            if failed_mode == mode:
                marks[label][[m.name for m in models].index(name)] = "cannot predict (see the table)"
        panels.append(figures.BarPanel(f"{_MODE_TITLES[mode]}, batch {batch}", [m.name for m in models], values,
                                       marks, errors))
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


def _communication_section(section: Section, docs: list, out: Path) -> None:
    """`dlcb bench comm`'s measurements: bus bandwidth against size per collective, all-reduce time
    with its α-β fits over it, and the fits' errors; one group per (file, backend, rank count)."""
    groups = [(path, doc, key, entries) for path, doc in docs
              for key, entries in _by_backend_and_ranks((doc.get("communication") or {}).get("measurements", []))]
    if not groups:
        section.note("No table holds communication measurements (`mpirun -n P dlcb bench comm` makes them).")
        return
    section.paragraph("Collectives timed by `dlcb bench comm` on every rank: the slowest rank's median time per "
                      "collective, bus bandwidth with the nccl-tests definitions, and the α-β fits (one line, "
                      "dashed; size regimes, dotted) with their relative errors.")
    for path, doc, (backend, ranks), entries in groups:
        fits = [f for f in (doc.get("communication") or {}).get("fits", [])
                if f.get("backend") == backend and f.get("ranks") == ranks]
        _communication_group(section, f"{backend}, {ranks} rank(s), {path.stem}", ranks, entries, fits, out)


def _by_backend_and_ranks(measurements: list) -> list:
    groups: dict = {}
    for entry in measurements:
        groups.setdefault((entry.get("backend", "?"), entry["ranks"]), []).append(entry)
    return list(groups.items())


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
        points = sorted((e["nbytes"], e["busbw_gbs"]) for e in ok if e["collective"] == collective)
        if ranks > 1 or collective == "broadcast":
            series.append(figures.Series(collective, [p[0] for p in points], [p[1] for p in points]))
    if series:
        chart = figures.line_chart(series, out / f"comm-busbw-{slug}.png", f"bus bandwidth, {label}",
                                   "message size (bytes)", "busbw (GB/s)")
        section.figure(chart, f"Bus bandwidth against message size, {label}.")
    else:
        section.note(f"{label}: one rank moves nothing between ranks; no bandwidth to draw.")
    allreduce = sorted((e["nbytes"], e["stats"]["median"]) for e in ok if e["collective"] == "allreduce")
    fit = next((f for f in fits if f["collective"] == "allreduce"), None)
    if allreduce and fit:
        sizes = [n for n, _ in allreduce]
        line = Line(fit["latency_s"], fit["seconds_per_byte"], *fit["fit_range_bytes"])
        regimes = Regimes.from_entries(fit["regimes"])
        chart = figures.line_chart(
            [figures.Series("allreduce measured", sizes, [t * 1e6 for _, t in allreduce]),
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


def _provenance_section(section: Section, docs: list) -> None:
    section.paragraph("Where every number comes from: the runs (command line, software, settings) and the devices "
                      "(clocks, peaks, bandwidth) of each table.")
    for path, doc in docs:
        for run in doc["runs"]:
            section.heading(f"Run {str(run.get('run_id', '?'))[:8]} of {path.name}")
            section.key_values(_run_rows(run, path))
        if not doc["runs"]:
            section.note(f"{path} records no runs.")
        for device in doc["devices"]:
            section.heading(f"Device {device['id']} of {path.name}")
            section.key_values(_device_rows(device))


def _compact(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


_RUN_KEYS = ("run_id", "suite", "status", "started", "finished", "threads", "caches", "rounds", "settings",
             "harness", "environment")
_ENVIRONMENT_KEYS = ("command", "packages", "build_revision", "python", "implementation", "platform", "hostname",
                     "blas", "compiler", "openmp_max_threads", "env", "cuda")


def _run_rows(run: dict, path: Path) -> list:
    env = run.get("environment") or {}
    packages = dict(env.get("packages") or {})
    dlcb = packages.pop("dlcb-kernels", None)
    command = env.get("command")
    blas = "; ".join(f"{b.get('internal_api', '?')} {b.get('version', '?')} ({b.get('architecture', '?')}, "
                     f"{b.get('threading_layer', '?')}, {b.get('num_threads', '?')} threads)"
                     for b in env.get("blas") or [] if isinstance(b, dict))
    overhead = ((run.get("harness") or {}).get("overhead_s") or {}).get("median")
    rows = [
        ("table file", str(path)), ("run id", run.get("run_id")), ("suite", run.get("suite")),
        ("status", run.get("status")), ("started", run.get("started")), ("finished", run.get("finished")),
        ("command line", shlex.join(map(str, command)) if isinstance(command, list) else command),
        ("threads", run.get("threads")), ("caches", ", ".join(map(str, run.get("caches") or [])) or None),
        ("rounds", run.get("rounds")),
        ("dlcb-kernels", (f"{dlcb or '?'} (build {env.get('build_revision') or '?'}, "
                         f"compiler {env.get('compiler') or '?'})")),
        ("Python", f"{env.get('implementation') or ''} {env.get('python') or '?'}".strip()),
        ("platform", env.get("platform")), ("hostname", env.get("hostname")),
        ("libraries", ", ".join(f"{name} {version}" for name, version in sorted(packages.items())) or None),
        ("BLAS", blas or None),
        ("OpenMP threads", env.get("openmp_max_threads")),
        ("environment variables", " ".join(f"{k}={v}" for k, v in sorted((env.get("env") or {}).items())) or None),
        ("timer", f"{(run.get('harness') or {}).get('timer')}, overhead median "
                  f"{overhead * 1e9:.0f} ns" if _number(overhead) else (run.get("harness") or {}).get("timer")),
        ("sampler settings", _compact(run["settings"]) if run.get("settings") else None),
    ]
    if env.get("cuda"):
        rows.append(("CUDA", _compact(env["cuda"])))
    # whatever else the run carries (an MPI job's rank and host, fields of later versions)
    rows += [(key, v if isinstance(v, (str, int, float)) else _compact(v))
             for key, v in run.items() if key not in _RUN_KEYS]
    rows += [(f"environment.{key}", v if isinstance(v, (str, int, float)) else _compact(v))
             for key, v in env.items() if key not in _ENVIRONMENT_KEYS]
    return rows


def _device_rows(device: dict) -> list:
    rows = [("id", device.get("id")), ("name", device.get("name")), ("kind", device.get("kind")),
            ("hostname", device.get("hostname") or device.get("host"))]
    if device.get("kind") == "cpu":
        clock = device.get("clock") or {}
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
            ("hypervisor", f"{device['hypervisor'].get('vendor') or 'unknown'} ({device['hypervisor'].get('source')})"
             if isinstance(device.get("hypervisor"), dict) else "none detected"),
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
    for dtype, peak in (device.get("peaks") or {}).items():
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
        if key in device:
            rows.append((key, device[key] if isinstance(device[key], (str, int, float)) else _compact(device[key])))
    return rows
