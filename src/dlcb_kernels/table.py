"""The throughput table: one JSON document per run (or a merge of runs), versioned schema.

Layout (schema_version 2; version 1 lacked each record's variant, see results.py):
  schema, schema_version
  runs:     [{run_id, started, finished, status, command, suite, settings, harness, environment}]
  devices:  [{id, run_id, ...device block from dlcb_kernels.devices...}]
  records:  [{run_id, device_id, op, problem, params, implementation, variant, provider, dtype, cache,
              status, flops, flops_full, bytes, arithmetic_intensity, stats, samples_ns,
              gflops, gflops_full, gbs, peak, percent_of_peak, vs_best_vendor, library,
              algorithm, kernel (ours on the CPU: isa, mr, nr, kc, mc, nc, schedule,
              blocking_rule), ...}]
  communication: {measurements: [...], fits: [...]} from `dlcb bench comm` (dlcb_kernels.comm.bench
                 describes both), empty in kernel runs

A run's file is rewritten whole after every problem, to a temporary file that then replaces
it: killed at any point, the file on disk is valid JSON with every finished record.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

from . import schema

SCHEMA = "dlcb-kernels/throughput-table"
SCHEMA_VERSION = 2
RECORD_STATUSES = ("ok", "failed", "error", "unavailable", "skipped")

CSV_COLUMNS = (
    "device_id", "op", "problem", "implementation", "provider", "dtype", "cache", "status",
    "threads", "flops", "flops_full", "bytes", "arithmetic_intensity", "median_s", "q1_s", "q3_s",
    "rel_noise", "samples", "gflops", "gflops_full", "gbs", "percent_of_peak", "peak_gflops", "peak_label",
    "error", "tolerance", "vendor", "speedup_vs_vendor", "reason", "library", "algorithm", "blocking",
)


class TableError(ValueError):
    """A file that is not a valid throughput table (foreign, corrupt, or a newer schema)."""


def new_table() -> dict:
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "runs": [], "devices": [],
            "records": [], "communication": {}}


def validate(doc, source: str = "table") -> dict:
    """Checks the document's schema and structure; returns it, or raises TableError."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise TableError(f"{source} is not a dlcb-kernels throughput table (no schema {SCHEMA!r})")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise TableError(f"{source}: schema_version must be an int, got {version!r}")
    if version > SCHEMA_VERSION:
        raise TableError(f"{source} has schema version {version}; this dlcb-kernels reads up to "
                         f"{SCHEMA_VERSION}: upgrade dlcb-kernels")
    try:
        schema.check(doc, source=source)  # every field a reader uses, typed (data/table.schema.json)
    except schema.SchemaError as exc:
        raise TableError(str(exc)) from None
    device_ids = {device["id"] for device in doc["devices"]}
    for i, record in enumerate(doc["records"]):
        if record["status"] == "ok" and not isinstance(record.get("stats"), dict):
            raise TableError(f"{source}: records[{i}] is ok but has no stats")
        if record["device_id"] not in device_ids:
            raise TableError(f"{source}: records[{i}] names device {record['device_id']!r}, which is not in devices")
    doc.setdefault("communication", {})
    return doc


def load(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no such table file: {path}") from None
    except IsADirectoryError:
        raise TableError(f"{path} is a directory, not a table file") from None
    except PermissionError:
        raise TableError(f"{path} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise TableError(f"{path} is not a text file") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TableError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise TableError(f"{path} is nested too deeply to be a throughput table") from None
    return validate(doc, str(path))


def require_writable(path) -> Path:
    """Path, checked before any work is done to fill it: not a directory, its folder a folder
    (created if missing) that this user may write in. ValueError naming the path otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output {path} is a directory; name a file in it")
    folder = path.parent
    for above in (folder, *folder.parents):
        if above.exists():
            if not above.is_dir():
                raise ValueError(f"output {path} cannot be created: {above} is a file, not a folder")
            if not os.access(above, os.W_OK | os.X_OK):
                raise ValueError(f"output {path} cannot be created: no permission to write in {above}")
            break
    return path


def write_text_atomic(path, text: str) -> None:
    """Writes text to path via a temporary file in the same directory and an atomic rename:
    readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a file the user writes follows the umask
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def write_atomic(path, doc: dict) -> None:
    """Writes the table to path atomically (see write_text_atomic)."""
    write_text_atomic(path, json.dumps(doc, indent=1, allow_nan=False, default=_json_default) + "\n")


def _json_default(value):
    # numpy scalars reach here from statistics and device probes
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def finite_or_none(x):
    """JSON has no NaN/inf: such values are stored as null."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class TableWriter:
    """A run's table on disk, rewritten atomically after every batch of records."""

    def __init__(self, path, run: dict, device: dict):
        self.path = Path(path)
        self.doc = new_table()
        self.doc["runs"].append(run)
        self.doc["devices"].append(device)
        self.flush()

    @property
    def run(self) -> dict:
        return self.doc["runs"][0]

    def append(self, records, *, flush: bool = True) -> int:
        """Adds records (results.Record) and rewrites the file (unless the caller flushes after more
        changes); returns the first one's position."""
        position = len(self.doc["records"])
        self.doc["records"].extend(r.to_json() for r in records)
        if flush:
            self.flush()
        return position

    def put(self, position: int, record) -> None:
        """Replaces the record at a position (flush to write)."""
        self.doc["records"][position] = record.to_json()

    def finish(self, status: str, finished: str) -> None:
        self.run["status"] = status
        self.run["finished"] = finished
        self.flush()

    def flush(self) -> None:
        write_atomic(self.path, self.doc)


def merge(docs: list[dict]) -> dict:
    """One table holding the runs, devices and records of several (e.g. one per device).

    A device in several tables keeps one peak per dtype, the highest measured (see
    peak_store.py), and the records held against a measured peak are held against that one."""
    merged = new_table()
    seen_runs: set[str] = set()
    for doc in docs:
        validate(doc)
        for run in doc["runs"]:
            if run["run_id"] in seen_runs:
                raise TableError(f"run {run['run_id']} appears in more than one table")
            seen_runs.add(run["run_id"])
            merged["runs"].append(run)
        known = {d["id"]: d for d in merged["devices"]}
        for device in doc["devices"]:
            if device["id"] in known:
                # The same device seen by two runs (a kernel run and a communication run of one
                # host): what either knows is kept, the first table's values winning.
                first = known[device["id"]]
                first.update({k: v for k, v in device.items() if k not in first})
                _keep_higher_peaks(first, device)
            else:
                known[device["id"]] = dict(device)
                merged["devices"].append(known[device["id"]])
        merged["records"].extend(dict(record) for record in doc["records"])
        for key, value in doc.get("communication", {}).items():
            if isinstance(value, list):
                merged["communication"].setdefault(key, []).extend(value)
            else:
                merged["communication"].setdefault(key, value)
    _rehold_against_device_peaks(merged)
    return merged


def _keep_higher_peaks(kept: dict, other: dict) -> None:
    peaks = dict(kept.get("peaks") or {})
    for dtype, entry in (other.get("peaks") or {}).items():
        mine = peaks.get(dtype) or {}
        if (entry.get("measured_gflops") or 0) > (mine.get("measured_gflops") or 0):
            peaks[dtype] = entry
    if peaks:
        kept["peaks"] = peaks


def _rehold_against_device_peaks(doc: dict) -> None:
    """% of peak of every ok record that was held against a measured peak, against its device's."""
    from .devices import peak_for

    devices = {d["id"]: d for d in doc["devices"]}
    for record in doc["records"]:
        peak = record.get("peak") or {}
        if record.get("status") != "ok" or not peak.get("gflops") or "measured peak" not in (peak.get("label") or ""):
            continue
        try:
            gflops, label = peak_for(devices[record["device_id"]], record["dtype"], "measured")
        except (KeyError, ValueError):
            continue
        if gflops != peak["gflops"] and record.get("gflops") is not None:
            record["peak"] = {"gflops": gflops, "label": f"{label} (the highest of the merged tables')"}
            record["percent_of_peak"] = 100.0 * record["gflops"] / gflops
            record["exceeds_peak"] = record["gflops"] > gflops


def csv_row(record: dict) -> dict:
    stats = record.get("stats") or {}
    err = record.get("error") or {}
    peak = record.get("peak") or {}
    vs = record.get("vs_best_vendor") or {}
    return {
        "device_id": record.get("device_id"), "op": record.get("op"), "problem": record.get("problem"),
        "implementation": record.get("implementation"), "provider": record.get("provider"),
        "dtype": record.get("dtype"), "cache": record.get("cache"), "status": record.get("status"),
        "threads": record.get("threads"), "flops": record.get("flops"),
        "flops_full": record.get("flops_full"), "bytes": record.get("bytes"),
        "arithmetic_intensity": record.get("arithmetic_intensity"), "median_s": stats.get("median"),
        "q1_s": stats.get("q1"), "q3_s": stats.get("q3"), "rel_noise": stats.get("rel_noise"),
        "samples": stats.get("count"), "gflops": record.get("gflops"),
        "gflops_full": record.get("gflops_full"), "gbs": record.get("gbs"),
        "percent_of_peak": record.get("percent_of_peak"), "peak_gflops": peak.get("gflops"),
        "peak_label": peak.get("label"), "error": err.get("value"), "tolerance": err.get("tolerance"),
        "vendor": vs.get("implementation"), "speedup_vs_vendor": vs.get("speedup"),
        "reason": record.get("reason"), "library": record.get("library"),
        "algorithm": record.get("algorithm"), "blocking": blocking_text(record.get("kernel")),
    }


def blocking_text(kernel) -> str | None:
    """A record's micro-kernel and cache blocking in one CSV cell: "avx2 6x16 kc=512 mc=4092 nc=256"
    (plus the GEMM schedule where there is one, "transposed" when C^T = B^T A^T ran)."""
    if not isinstance(kernel, dict):
        return None
    text = f"{kernel.get('isa')} {kernel.get('mr')}x{kernel.get('nr')} kc={kernel.get('kc')} " \
           f"mc={kernel.get('mc')} nc={kernel.get('nc')}"
    text += f" {kernel['schedule']}" if kernel.get("schedule") else ""
    return text + (" transposed" if kernel.get("transposed") else "")


def to_csv(doc: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in doc["records"]:
        writer.writerow(csv_row(record))
    return out.getvalue()


def write_csv(path, doc: dict) -> None:
    write_text_atomic(path, to_csv(doc))
