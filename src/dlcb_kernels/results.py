"""Typed results: Record, Run, Device and Table, each with from_json/to_json, so that writers
build and readers ask `record.median`, `record.variant` or `device.peak("float32")` instead of
digging through nested dicts or parsing implementation names back from strings.

The JSON form is the throughput table's (table.py, data/table.schema.json). Every field a type
does not name is kept in its `extra` dict and written back as it was read, so that a table
passes through a reader unchanged: a record's suite labels (set, model, layer, ...), its timer
and rounds_detail; a run's MPI fields; a device's hardware description.

Schema version 2 added each record's `variant` (the implementation's short name). A table of
version 1 lacks it: reading such a record derives it here, once, from the implementation name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .measure.stats import Stats

# Marks after an ok record's status: ~ missed its noise target, * the machine disturbed it.
SHAKY_MARK, CONTENDED_MARK = "~", "*"


def _split(raw: dict, names) -> tuple[dict, dict]:
    known = {name: raw[name] for name in names if name in raw}
    return known, {key: value for key, value in raw.items() if key not in known}


def _stats_from_json(value) -> Stats | None:
    if not isinstance(value, dict):
        return None
    return Stats(**{f.name: value.get(f.name) for f in dataclasses.fields(Stats)})


def _stats_to_json(stats: Stats | None):
    from .table import finite_or_none

    if stats is None:
        return None
    return {k: finite_or_none(v) for k, v in stats.as_dict().items() if v is not None}  # absent stays absent


@dataclass(frozen=True)
class VendorComparison:
    """Ours against the fastest vendor record of the same problem, dtype and cache in one run."""

    implementation: str
    variant: str
    time_ratio: float              # ours / vendor median time: < 1 is faster
    speedup: float                 # vendor / ours: > 1 is faster

    @classmethod
    def from_json(cls, value) -> VendorComparison | None:
        if not isinstance(value, dict):
            return None
        name, ratio, speedup = value.get("implementation"), value.get("time_ratio"), value.get("speedup")
        if not name or not (ratio or speedup):  # written by hand or another tool without the figures
            return None
        ratio, speedup = ratio or 1.0 / speedup, speedup or 1.0 / ratio
        return cls(name, value.get("variant") or name.rsplit("/", 1)[-1], ratio, speedup)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


_RECORD_FIELDS = (
    "run_id", "device_id", "op", "problem", "params", "implementation", "variant", "provider", "backend",
    "dtype", "cache", "threads", "flops", "flops_full", "bytes", "arithmetic_intensity", "status", "reason",
    "error", "timestamp", "library", "algorithm", "kernel", "stats", "samples_ns", "warmup_count",
    "stop_reason", "converged", "gflops", "gflops_full", "gbs", "peak", "percent_of_peak", "exceeds_peak",
    "vs_best_vendor", "conditions", "rounds",
)


_ALWAYS_WRITTEN = ("reason", "library")
_ALWAYS_WRITTEN_OK = _ALWAYS_WRITTEN + ("algorithm", "vs_best_vendor", "percent_of_peak")


@dataclass(frozen=True)
class Record:
    """One (problem, implementation, dtype, cache mode) on one device in one run."""

    op: str
    problem: str
    implementation: str            # op/backend/variant, the registry's name
    variant: str                   # the short name: ours-avx512, numpy, cudnn, ...
    provider: str                  # "ours" or "vendor"
    backend: str                   # "cpu" or "cuda"
    dtype: str
    cache: str
    status: str                    # ok, failed, error, unavailable, skipped
    device_id: str
    run_id: str = ""
    reason: str | None = None
    params: dict = field(default_factory=dict)
    threads: int | None = None
    flops: float | None = None
    flops_full: float | None = None
    bytes: float | None = None
    arithmetic_intensity: float | None = None
    error: dict = field(default_factory=dict)        # metric, value, tolerance
    timestamp: str | None = None
    library: str | None = None
    algorithm: str | None = None
    kernel: dict | None = None
    stats: Stats | None = None
    samples_ns: tuple = ()
    warmup_count: int | None = None
    stop_reason: str | None = None
    converged: bool | None = None
    gflops: float | None = None
    gflops_full: float | None = None
    gbs: float | None = None
    peak: dict | None = None                         # gflops, label
    percent_of_peak: float | None = None
    exceeds_peak: bool = False
    vs_best_vendor: VendorComparison | None = None
    conditions: dict | None = None                   # throttled, contended, clock_disturbed, blocks
    rounds: int | None = None
    extra: dict = field(default_factory=dict)        # suite labels, timer, rounds_detail, ...

    @classmethod
    def from_json(cls, raw: dict) -> Record:
        known, extra = _split(raw, _RECORD_FIELDS)
        known.setdefault("variant", raw["implementation"].rsplit("/", 1)[-1])  # schema version 1
        known.setdefault("provider", "vendor")
        known.setdefault("backend", "cpu")
        known["stats"] = _stats_from_json(known.get("stats"))
        known["samples_ns"] = tuple(known.get("samples_ns") or ())
        known["vs_best_vendor"] = VendorComparison.from_json(known.get("vs_best_vendor"))
        known["params"] = known.get("params") or {}
        known["error"] = known.get("error") or {}
        known["exceeds_peak"] = bool(known.get("exceeds_peak"))
        return cls(**known, extra=extra)

    def to_json(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name == "stats":
                value = _stats_to_json(value)
            elif f.name == "vs_best_vendor":
                value = value.to_json() if value is not None else None
            elif f.name == "samples_ns":
                value = list(value)
            out[f.name] = value
        # A field without a value is left out, but for those every reader expects to find
        if self.ok:
            out = {k: v for k, v in out.items() if v is not None or k in _ALWAYS_WRITTEN_OK}
        else:  # an untimed record carries no timing fields
            out = {k: v for k, v in out.items() if v is not None or k in _ALWAYS_WRITTEN}
            for name in ("samples_ns", "exceeds_peak"):
                out.pop(name, None)
        out.update(self.extra)
        return out

    def replace(self, **changes) -> Record:
        return dataclasses.replace(self, **changes)

    def label(self, name: str, default=None):
        """A suite label (set, model, layer, ...) or another field kept as written."""
        return self.extra.get(name, default)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def median(self) -> float | None:
        return self.stats.median if self.stats is not None else None

    @property
    def rel_noise(self) -> float | None:
        return self.stats.rel_noise if self.stats is not None else None

    @property
    def direction(self) -> str:
        """conv's and rnn's pass (fwd, bwd_data, ...); "-" for ops without one."""
        return self.params.get("direction", "-")

    @property
    def unconverged(self) -> bool:
        """Sampling stopped before the noise target: less certain than the target says."""
        return self.ok and self.converged is False

    @property
    def contended(self) -> bool:
        """Other processes (or the hypervisor) took CPU time while a block of it was timed."""
        return self.ok and bool((self.conditions or {}).get("contended"))

    @property
    def throttled(self) -> bool:
        return self.ok and bool((self.conditions or {}).get("throttled"))

    @property
    def slowed(self) -> bool:
        """The host ran the cores slower than their kept peak around a block of it, even after
        the harness measured that block again (a neighbour on the SMT sibling, power)."""
        return self.ok and bool((self.conditions or {}).get("slowed"))

    @property
    def disturbed(self) -> bool:
        """The machine, not the kernel, changed while it was timed: contended, slowed or throttled."""
        return self.contended or self.slowed or self.throttled

    @property
    def shaky(self) -> bool:
        """Not to be taken as fact: unconverged or disturbed."""
        return self.unconverged or self.disturbed

    @property
    def status_mark(self) -> str:
        """ok, ok~ (missed the noise target), ok* (disturbed), ok~*; else the status."""
        if not self.ok:
            return self.status
        return "ok" + (SHAKY_MARK if self.unconverged else "") + (CONTENDED_MARK if self.disturbed else "")


_RUN_FIELDS = ("run_id", "suite", "started", "finished", "status", "threads", "caches", "rounds", "settings",
               "harness", "environment", "machine_at_start")


@dataclass(frozen=True)
class Run:
    run_id: str
    suite: str | None = None
    started: str | None = None
    finished: str | None = None
    status: str | None = None
    threads: int | None = None
    caches: tuple = ()
    rounds: int | None = None
    settings: dict = field(default_factory=dict)
    harness: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    machine_at_start: dict | None = None             # measure.contention.sample() at its start
    extra: dict = field(default_factory=dict)        # command, MPI rank and host, ...

    @classmethod
    def from_json(cls, raw: dict) -> Run:
        known, extra = _split(raw, _RUN_FIELDS)
        known["caches"] = tuple(known.get("caches") or ())
        for name in ("settings", "harness", "environment"):
            known[name] = known.get(name) or {}
        return cls(**known, extra=extra)

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out["caches"] = list(self.caches)
        out = {k: v for k, v in out.items() if v not in (None, [], {})}  # what was not given stays out
        out.update(self.extra)
        return out

    @property
    def busy_at_start(self) -> bool:
        return bool((self.machine_at_start or {}).get("busy"))


_DEVICE_FIELDS = ("id", "kind", "name", "peaks")


@dataclass(frozen=True)
class Device:
    id: str
    kind: str | None = None
    name: str | None = None
    peaks: dict = field(default_factory=dict)        # dtype -> peak entry (devices.py)
    extra: dict = field(default_factory=dict)        # clock, memory, caches, kernels, ranks, ...

    @classmethod
    def from_json(cls, raw: dict) -> Device:
        known, extra = _split(raw, _DEVICE_FIELDS)
        known["peaks"] = known.get("peaks") or {}
        return cls(**known, extra=extra)

    def to_json(self) -> dict:
        out = {"id": self.id, "kind": self.kind, "name": self.name, "peaks": self.peaks}
        out = {k: v for k, v in out.items() if v is not None}
        out.update(self.extra)
        return out

    def get(self, name: str, default=None):
        """A field of the hardware description (clock, memory, ranks, ...) as written."""
        return self.extra.get(name, default)


@dataclass(frozen=True)
class Table:
    runs: tuple[Run, ...]
    devices: tuple[Device, ...]
    records: tuple[Record, ...]
    communication: dict = field(default_factory=dict)
    schema_version: int = 2

    @classmethod
    def from_json(cls, doc: dict, source: str = "table") -> Table:
        """The typed view of a table document, validated first (table.validate)."""
        from .table import validate

        doc = validate(doc, source)
        return cls(tuple(Run.from_json(r) for r in doc["runs"]), tuple(Device.from_json(d) for d in doc["devices"]),
                   tuple(Record.from_json(r) for r in doc["records"]), doc.get("communication") or {},
                   doc["schema_version"])

    def to_json(self) -> dict:
        from .table import SCHEMA, SCHEMA_VERSION

        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "runs": [r.to_json() for r in self.runs],
                "devices": [d.to_json() for d in self.devices], "records": [r.to_json() for r in self.records],
                "communication": self.communication}

    def device(self, device_id: str) -> Device | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def device_ids(self) -> list[str]:
        """The ids of the devices that have records, in record order."""
        return list(dict.fromkeys(r.device_id for r in self.records))

    def on_device(self, device_id: str) -> Table:
        return dataclasses.replace(self, records=tuple(r for r in self.records if r.device_id == device_id))
