"""One measured peak per device, kept across runs.

A peak probe is a few milliseconds of FMA chains: on a shared or noisy machine one probe reads
low (it ranged 139.6-201.7 GFLOP/s on one 2-core VM), and every record's % of peak moved with it.
A device's measured peak is therefore kept in a small file per device (the user's cache folder)
and each run holds its records against the highest value any run has measured there: the max
is the probe's least disturbed reading, and a capped probe (devices.py) cannot exceed the
theoretical peak. A run records both the kept value and its own probe.

The file is keyed by what the peak depends on: the device id (host), the CPU or GPU name, the
threads and the ISA the kernels run. Location: $DLCB_CACHE_DIR, else $XDG_CACHE_HOME/dlcb-kernels,
else ~/.cache/dlcb-kernels. `dlcb bench --peak-store refresh` starts the kept value again from
this run's probe; `off` neither reads nor writes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MODES = ("use", "refresh", "off")


def cache_dir() -> Path:
    if os.environ.get("DLCB_CACHE_DIR"):
        return Path(os.environ["DLCB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlcb-kernels"


def _identity(device: dict) -> dict:
    kernels = device.get("kernels") or {}
    return {"id": device.get("id"), "name": device.get("name"), "threads": device.get("threads_used"),
            "isa": kernels.get("default"), "kind": device.get("kind")}


def store_path(device: dict) -> Path:
    identity = json.dumps(_identity(device), sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return cache_dir() / "peaks" / f"{digest}.json"


def _read(path: Path) -> dict:
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) and isinstance(kept.get("peaks"), dict) else {}


def _write(path: Path, content: dict) -> str | None:
    """Writes the file atomically; the reason it could not be written, or None."""
    from .table import write_text_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(content, indent=1))
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None


def apply(device: dict, mode: str = "use", *, when: str | None = None) -> dict:
    """The device block with each measured peak replaced by the kept maximum (this run's probe
    included), and the store updated. Each peak entry says what happened under "kept"."""
    if mode not in MODES:
        raise ValueError(f"peak-store must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return device
    path = store_path(device)
    kept = {} if mode == "refresh" else _read(path)
    kept_peaks = kept.get("peaks", {})
    peaks = {}
    for dtype, entry in (device.get("peaks") or {}).items():
        probe = entry.get("measured_gflops")
        if not isinstance(probe, (int, float)):
            peaks[dtype] = entry
            continue
        before = kept_peaks.get(dtype) or {}
        best = max(probe, before.get("gflops") or 0.0)
        # a kept value above this run's theoretical peak (a faster clock then) is capped by it
        if entry.get("flop_per_cycle_known") and entry.get("theoretical_gflops"):
            best = min(best, entry["theoretical_gflops"])
        runs = int(before.get("runs") or 0) + 1
        kept_peaks[dtype] = {"gflops": best, "runs": runs, "first": before.get("first") or when,
                             "summary": entry.get("measured_summary")}
        summary = entry.get("measured_summary") or "measured"
        peaks[dtype] = dict(entry, measured_gflops=best, measured_this_run_gflops=probe,
                            measured_summary=f"{summary}; highest of {runs} run(s) on this device "
                                             f"(this run {probe:.1f})",
                            kept={"runs": runs, "first": kept_peaks[dtype]["first"], "store": str(path)})
    problem = _write(path, {"identity": _identity(device), "peaks": kept_peaks})
    if problem is not None:  # a read-only home: the run goes on with this run's own peaks
        return dict(device, peak_store_error=problem)
    return dict(device, peaks=peaks)
