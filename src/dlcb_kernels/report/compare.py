"""Two runs compared problem by problem: is NEW faster, slower or the same as OLD?

Records of the two tables are matched by (op, problem, implementation, dtype, cache) on a pair of
devices. A matched pair of "ok" records gets the ratio of median times new/old with a bootstrap
confidence interval from the raw samples (samples_ns), and a verdict from where that interval
lies against the threshold t:

  faster     the whole interval is below 1/(1+t)
  slower     the whole interval is above 1+t
  same       the whole interval is inside [1/(1+t), 1+t]
  ambiguous  anything else: the runs cannot tell (more samples, or a quieter machine, would);
             also any pair where a record stopped before its noise target (converged false) or
             was timed while other processes used the CPUs (contended) or throttled

Records that cannot be compared are listed with what happened to them instead of a verdict:
"new" (only in NEW; "new (unavailable)" when not ok there), "removed" (only in OLD; likewise),
"<status> in new" / "<status> in old" (ok in one table only, e.g. "failed in new", "unavailable in
old"), the status both share ("unavailable"), or "<old status> → <new status>" (e.g. "failed →
unavailable").
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections import Counter, defaultdict

import numpy as np

from ..results import Record, Table

DEFAULT_THRESHOLD = 0.05
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
MIN_RESAMPLES = 100
# Fewer samples than this and a bootstrap of the median only reshuffles a couple of values: the
# quartiles in stats are then the more honest description.
MIN_BOOTSTRAP_SAMPLES = 3
# The rank test's normal approximation is close enough from about this many samples per side.
MIN_RANK_TEST_SAMPLES = 8
# Bootstrap resamples are drawn in blocks of at most this many values, bounding the memory a
# record with many samples needs.
_BOOTSTRAP_BLOCK_VALUES = 2_000_000

TIMING_VERDICTS = ("faster", "slower", "same", "ambiguous")
# A kernel that became slower, or stopped passing its correctness check, fails a CI job; one
# whose library is not installed in the new run ("unavailable in new") does not.
REGRESSION_VERDICTS = ("slower", "failed in new", "error in new")
MATCH_FIELDS = ("op", "problem", "implementation", "dtype", "cache")


@dataclasses.dataclass(frozen=True)
class CompareSettings:
    """threshold: the relative change in time below which two runs count as the same (0.05: 5 %);
    confidence: of the bootstrap interval; resamples: bootstrap resamples per record pair; seed:
    makes the intervals reproducible (each pair draws from its own stream, so filters do not
    change the others' intervals)."""

    threshold: float = DEFAULT_THRESHOLD
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED

    def __post_init__(self):
        for name in ("threshold", "confidence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not (self.threshold > 0 and math.isfinite(self.threshold)):
            raise ValueError(f"threshold must be a finite number > 0, got {self.threshold}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {self.confidence}")
        for name in ("resamples", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if self.resamples < MIN_RESAMPLES:
            raise ValueError(f"resamples must be >= {MIN_RESAMPLES}, got {self.resamples}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def verdict(low: float, high: float, threshold: float) -> str:
    """faster, slower, same or ambiguous from an interval of the time ratio new/old."""
    if not low <= high:
        raise ValueError(f"low must be <= high, got {low} and {high}")
    lower_bound, upper_bound = 1.0 / (1.0 + threshold), 1.0 + threshold
    if high < lower_bound:
        return "faster"
    if low > upper_bound:
        return "slower"
    if low >= lower_bound and high <= upper_bound:
        return "same"
    return "ambiguous"


def _positive_samples(samples, name: str) -> np.ndarray:
    values = np.asarray(samples, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty list of times")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{name} must hold finite times > 0")
    return values


def _bootstrap_medians(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    block = max(1, _BOOTSTRAP_BLOCK_VALUES // values.size)
    medians = []
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        medians.append(np.median(values[rng.integers(0, values.size, (rows, values.size))], axis=1))
    return np.concatenate(medians)


def median_ratio_interval(old_samples, new_samples, *, confidence: float = DEFAULT_CONFIDENCE,
                          resamples: int = DEFAULT_RESAMPLES,
                          rng: np.random.Generator | None = None) -> tuple[float, float, float]:
    """(median(new)/median(old), low, high): the ratio of median times and its percentile
    bootstrap interval at this confidence (each run resampled on its own)."""
    old = _positive_samples(old_samples, "old_samples")
    new = _positive_samples(new_samples, "new_samples")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if rng is None:
        rng = np.random.default_rng(DEFAULT_SEED)
    ratios = _bootstrap_medians(new, resamples, rng) / _bootstrap_medians(old, resamples, rng)
    low, high = np.quantile(ratios, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(np.median(new) / np.median(old)), float(low), float(high)


def mann_whitney_p(old_samples, new_samples) -> float | None:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation, tie-corrected, with
    continuity correction): how likely samples this far apart in rank are when both runs draw
    from one distribution. None with fewer than MIN_RANK_TEST_SAMPLES samples on a side.

    The verdict comes from the bootstrap interval, which measures how large a change is; this
    test only says whether the runs differ at all, whatever the size. It tells "same, within the
    threshold, but measurably different" from "indistinguishable", and for an ambiguous pair
    whether more samples are likely to settle it. scipy is not a dependency, and with the
    sample counts dlcb bench takes (10 and up) the normal approximation is accurate enough."""
    old = _positive_samples(old_samples, "old_samples")
    new = _positive_samples(new_samples, "new_samples")
    n_old, n_new = old.size, new.size
    if min(n_old, n_new) < MIN_RANK_TEST_SAMPLES:
        return None
    pooled = np.sort(np.concatenate([old, new]))
    # average 1-based ranks: a value's rank is the middle of the run of equal values it belongs to
    old_ranks = (np.searchsorted(pooled, old, "left") + np.searchsorted(pooled, old, "right") + 1) / 2
    u_old = old_ranks.sum() - n_old * (n_old + 1) / 2
    total = n_old + n_new
    _, tie_counts = np.unique(pooled, return_counts=True)
    tie_term = float(np.sum(tie_counts.astype(float) ** 3 - tie_counts)) / (total * (total - 1))
    variance = n_old * n_new / 12 * ((total + 1) - tie_term)
    if variance <= 0:  # every sample equal: nothing tells the runs apart
        return 1.0
    distance = max(abs(u_old - n_old * n_new / 2) - 0.5, 0.0)
    return float(math.erfc(distance / math.sqrt(variance) / math.sqrt(2)))


def _key(record: Record) -> tuple:
    return tuple(getattr(record, field) for field in MATCH_FIELDS)


def _median_s(record: Record) -> float | None:
    median = record.median
    return float(median) if isinstance(median, (int, float)) and median > 0 else None


def _seed_stream(settings: CompareSettings, key: tuple) -> np.random.Generator:
    # one stream per problem: a pair's interval does not depend on which other pairs are compared
    return np.random.default_rng([settings.seed, zlib.crc32("\x1f".join(map(str, key)).encode())])


def _timing_row(old: Record, new: Record, settings: CompareSettings) -> dict:
    """The comparison of two ok records: ratio, interval, verdict, rank test. A pair with a record
    whose sampling stopped before its noise target (converged false), or that was timed while
    other processes took CPU time (contended) or the clock dropped, gets no confident verdict:
    its samples may be tight and still off, so the verdict is "ambiguous"."""
    row = _timing_row_of_samples(old, new, settings)
    why = []
    for name, record in (("old", old), ("new", new)):
        if record.unconverged:
            why.append(f"{name} missed the noise target")
        if record.contended:
            why.append(f"{name} was timed on a busy machine")
        if record.throttled:
            why.append(f"{name} was throttled")
        if record.slowed:
            why.append(f"{name} ran while the host slowed the cores")
    if why and row["verdict"] in ("faster", "slower", "same"):
        note = f"would be {row['verdict']}, but {' and '.join(why)} (shaky)"
        row.update(verdict="ambiguous", note=f"{row['note']}; {note}" if row.get("note") else note)
    return row


def _timing_row_of_samples(old: Record, new: Record, settings: CompareSettings) -> dict:
    key = _key(old)
    old_samples, new_samples = list(old.samples_ns), list(new.samples_ns)
    row = {"old_median_s": _median_s(old), "new_median_s": _median_s(new),
           "old_samples": len(old_samples), "new_samples": len(new_samples),
           "ratio": None, "ci_low": None, "ci_high": None, "p_value": None}
    if min(len(old_samples), len(new_samples)) >= MIN_BOOTSTRAP_SAMPLES:
        where = " / ".join(map(str, key))
        try:
            ratio, low, high = median_ratio_interval(
                old_samples, new_samples, confidence=settings.confidence, resamples=settings.resamples,
                rng=_seed_stream(settings, key))
            p_value = mann_whitney_p(old_samples, new_samples)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        row.update(basis="samples", ratio=ratio, ci_low=low, ci_high=high, p_value=p_value,
                   old_median_s=float(np.median(old_samples)) / 1e9,
                   new_median_s=float(np.median(new_samples)) / 1e9,
                   verdict=verdict(low, high, settings.threshold), note="")
        return row
    # Too few raw samples (a record written by hand or by another tool): the quartiles in stats
    # bound the ratio instead. The bounds are wider than a confidence interval, so they err towards
    # "ambiguous" rather than towards a verdict the data do not support.
    quartiles = [getattr(record.stats, q, None) for record in (old, new) for q in ("q1", "q3")]
    few = "old" if len(old_samples) < MIN_BOOTSTRAP_SAMPLES else "new"
    if row["old_median_s"] is None or row["new_median_s"] is None:
        row.update(basis="none", verdict="ambiguous", note="too few samples and no median time")
        return row
    row["ratio"] = row["new_median_s"] / row["old_median_s"]
    if not all(isinstance(q, (int, float)) and q > 0 for q in quartiles):
        row.update(basis="stats", verdict="ambiguous",
                   note=f"fewer than {MIN_BOOTSTRAP_SAMPLES} samples in {few} and no quartiles: no interval")
        return row
    old_q1, old_q3, new_q1, new_q3 = quartiles
    low, high = new_q1 / old_q3, new_q3 / old_q1
    row.update(basis="stats", ci_low=low, ci_high=high, verdict=verdict(low, high, settings.threshold),
               note=f"fewer than {MIN_BOOTSTRAP_SAMPLES} samples in {few}: interval from the quartiles in "
                    "stats, not a confidence interval")
    return row


def _status_verdict(old: Record | None, new: Record | None) -> str:
    if old is None:
        return "new" if new.ok else f"new ({new.status})"
    if new is None:
        return "removed" if old.ok else f"removed ({old.status})"
    if old.ok:
        return f"{new.status} in new"
    if new.ok:
        return f"{old.status} in old"
    if old.status == new.status:
        return old.status
    return f"{old.status} → {new.status}"


def _untimed_row(old: Record | None, new: Record | None) -> dict:
    """A record that is in one table only, or not ok in at least one: what happened to it."""
    reasons = [f"{record.status} in {side}: {record.reason}" for side, record in (("old", old), ("new", new))
               if record is not None and not record.ok and record.reason]
    return {"verdict": _status_verdict(old, new), "basis": "none", "ratio": None, "ci_low": None,
            "ci_high": None, "p_value": None,
            "old_median_s": _median_s(old) if old and old.ok else None,
            "new_median_s": _median_s(new) if new and new.ok else None,
            "old_samples": len(old.samples_ns) if old else 0,
            "new_samples": len(new.samples_ns) if new else 0,
            "note": "; ".join(reasons)}


def _device_ids(table: Table) -> list[str]:
    return list(dict.fromkeys(r.device_id for r in table.records + comm_records(table)))


def _parse_device_pair(text: str) -> tuple[str, str]:
    old_id, sep, new_id = text.partition("=")
    if not old_id or (sep and not new_id):
        raise ValueError(f"device must be ID or OLD_ID=NEW_ID, got {text!r}")
    return old_id, new_id if sep else old_id


def pair_devices(old_doc, new_doc, devices: list[str] | None = None) -> list[tuple[str, str]]:
    """The (old device id, new device id) pairs to compare.

    devices: "ID" or "OLD_ID=NEW_ID" items picking the pairs (device ids hold colons, hence "=").
    Without them, two tables of one device each are compared across their devices whatever the
    ids; otherwise devices are paired by equal id, and tables with none in common are an error
    rather than a guess."""
    old_ids, new_ids = _device_ids(_typed(old_doc, "OLD")), _device_ids(_typed(new_doc, "NEW"))
    for ids, side in ((old_ids, "OLD"), (new_ids, "NEW")):
        if not ids:
            raise ValueError(f"{side} has no kernel records or collective timings to compare")
    if devices:
        if not isinstance(devices, (list, tuple)) or not all(isinstance(d, str) for d in devices):
            raise TypeError("devices must be a list of strings")
        pairs = [_parse_device_pair(text) for text in devices]
        for (old_id, new_id) in pairs:
            for device_id, ids, side in ((old_id, old_ids, "OLD"), (new_id, new_ids, "NEW")):
                if device_id not in ids:
                    raise ValueError(f"device {device_id!r} has no records in {side} (it has "
                                     f"{', '.join(ids)})")
        for index, side in ((0, "OLD"), (1, "NEW")):
            used = [pair[index] for pair in pairs]
            if len(set(used)) != len(used):
                raise ValueError(f"device: an {side} device is paired more than once in {devices}")
        return pairs
    if len(old_ids) == 1 and len(new_ids) == 1:
        return [(old_ids[0], new_ids[0])]
    common = [device_id for device_id in old_ids if device_id in new_ids]
    if not common:
        raise ValueError(f"OLD's devices ({', '.join(old_ids)}) and NEW's ({', '.join(new_ids)}) have no id in "
                         "common; pair them explicitly with --device OLD_ID=NEW_ID")
    return [(device_id, device_id) for device_id in common]


def _records_by_key(records: list[Record], side: str, device_id: str) -> dict:
    keyed = {}
    for record in records:
        key = _key(record)
        if key in keyed:
            raise ValueError(f"{side} holds two records of {' / '.join(map(str, key))} on device {device_id} "
                             "(a merge of two runs of one device?); compare tables of one run each")
        keyed[key] = record
    return keyed


def _typed(doc, side: str) -> Table:
    return doc if isinstance(doc, Table) else Table.from_json(doc, side)


def comm_records(table: Table) -> tuple[Record, ...]:
    """The table's collective timings (`dlcb bench comm`) as records to compare: op "comm",
    implementation comm/BACKEND/COLLECTIVE (variant BACKEND/COLLECTIVE), one problem per size and
    rank count, on the device of rank 0 (the host whose clock the slowest-rank samples are read on)."""
    measurements = table.communication.get("measurements") or []
    if not measurements or not table.devices:
        return ()
    home = next((d.id for d in table.devices if 0 in (d.get("ranks") or [])), table.devices[0].id)
    return tuple(Record.from_json({
        "op": "comm", "problem": f"{e['collective']} {e['nbytes']} B p{e['ranks']}",
        "implementation": f"comm/{e.get('backend', '?')}/{e['collective']}",
        "variant": f"{e.get('backend', '?')}/{e['collective']}", "provider": "vendor", "backend": "comm",
        "dtype": e.get("dtype", "float32"), "cache": "warm", "status": e["status"], "reason": e.get("reason"),
        "samples_ns": e.get("samples_ns") or [], "stats": e.get("stats"), "converged": e.get("converged"),
        "device_id": home}) for e in measurements)


def _selected(record: Record, ops: set[str] | None, impls: set[str] | None) -> bool:
    if ops and record.op not in ops:
        return False
    if impls:
        return bool({record.implementation, record.variant, record.provider} & impls)
    return True


def compare_tables(old_doc: dict, new_doc: dict, settings: CompareSettings | None = None, *,
                   devices: list[str] | None = None, ops=None, impls=None) -> dict:
    """The comparison of two throughput tables:
    {"settings", "device_pairs", "rows", "geomean", "tally", "regressions"}.

    Collective timings of `dlcb bench comm` are compared too, as op "comm" (see comm_records).
    ops: op names to keep (gemm, conv, rnn, comm); impls: implementations to keep, by full name
    (gemm/cpu/numpy), short name (numpy) or provider (ours, vendor). Rows follow OLD's record
    order, then NEW's records that OLD lacks; devices in one table only (when tables of several
    devices are paired by id) are listed as new or removed too."""
    settings = settings or CompareSettings()
    if not isinstance(settings, CompareSettings):
        raise TypeError(f"settings must be a CompareSettings, got {type(settings).__name__}")
    old_doc, new_doc = _typed(old_doc, "OLD"), _typed(new_doc, "NEW")
    op_set, impl_set = _name_set(ops, "ops"), _name_set(impls, "impls")
    pairs = pair_devices(old_doc, new_doc, devices)
    sides = []
    for doc, side, index in ((old_doc, "OLD", 0), (new_doc, "NEW", 1)):
        by_device = defaultdict(list)
        for record in doc.records + comm_records(doc):
            if _selected(record, op_set, impl_set):
                by_device[record.device_id].append(record)
        sides.append((by_device, side, index))
    rows = []
    for old_id, new_id in pairs:
        old_records = _records_by_key(sides[0][0].get(old_id, []), "OLD", old_id)
        new_records = _records_by_key(sides[1][0].get(new_id, []), "NEW", new_id)
        for key in list(old_records) + [k for k in new_records if k not in old_records]:
            rows.append(_row(key, old_id, new_id, old_records.get(key), new_records.get(key), settings))
    if not devices:
        # devices that only one table has, when tables of several devices are paired by id
        paired = [{pair[0] for pair in pairs}, {pair[1] for pair in pairs}]
        for by_device, side, index in sides:
            for device_id, records in by_device.items():
                if device_id in paired[index]:
                    continue
                for key, record in _records_by_key(records, side, device_id).items():
                    old_id, new_id = (device_id, None) if index == 0 else (None, device_id)
                    rows.append(_row(key, old_id, new_id, record if index == 0 else None,
                                     record if index == 1 else None, settings))
    return {"settings": dataclasses.asdict(settings), "device_pairs": [list(pair) for pair in pairs],
            "rows": rows, "geomean": geomean_summary(rows), "tally": tally(rows),
            "regressions": sum(row["verdict"] in REGRESSION_VERDICTS for row in rows)}


def _name_set(names, argument: str) -> set[str] | None:
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise TypeError(f"{argument} must be a collection of names (strings)")
    return set(names) or None


def _row(key: tuple, old_id, new_id, old: Record | None, new: Record | None, settings: CompareSettings) -> dict:
    row = dict(zip(MATCH_FIELDS, key))
    row.update(variant=(old or new).variant, old_device=old_id, new_device=new_id)
    if old is not None and new is not None and old.ok and new.ok:
        row.update(_timing_row(old, new, settings))
    else:
        row.update(_untimed_row(old, new))
    return row


def geomean_summary(rows: list[dict]) -> list[dict]:
    """Geometric mean of the time ratios new/old per (device pair, implementation, op), over the
    pairs that both runs measured."""
    groups = defaultdict(list)
    for row in rows:
        if row["ratio"] is not None:
            groups[(row["old_device"], row["new_device"], row["implementation"], row["variant"],
                    row["op"])].append(row["ratio"])
    return [{"old_device": old_id, "new_device": new_id, "implementation": impl, "variant": variant, "op": op,
             "count": len(ratios), "geomean_ratio": math.exp(sum(map(math.log, ratios)) / len(ratios))}
            for (old_id, new_id, impl, variant, op), ratios in groups.items()]


def tally(rows: list[dict]) -> dict:
    """{verdict: count}, the four timing verdicts first (zero counts included), then the others."""
    counts = Counter(row["verdict"] for row in rows)
    ordered = {name: counts.pop(name, 0) for name in TIMING_VERDICTS}
    ordered.update(sorted(counts.items()))
    return ordered
