"""Typed results: a record, run and device read from JSON and written back unchanged; tables of
schema version 1 (records without `variant`) still read."""

import json

import pytest

from dlcb_kernels import table
from dlcb_kernels.measure import Measurement, summarize
from dlcb_kernels.problems import GemmProblem
from dlcb_kernels.records import base_record, block_conditions, compare_to_vendors, failed_record, timed_record
from dlcb_kernels.registry import select
from dlcb_kernels.results import Device, Record, Run, Table


def measured(samples, blocks=()):
    return Measurement("warm", list(samples), summarize(samples), 2, "noise target reached", True,
                       {"timer": "fake"}, list(blocks))


def records():
    problem = GemmProblem(32, 16, 8)
    ours, numpy = (select(["gemm"], name, backend="cpu")[0] for name in ("ours", "numpy"))
    base = dict(run_id="r", device_id="cpu:h", cache="warm", threads=2, labels={"set": "quick"})
    mine = timed_record(base_record(problem, ours, **base), measured([1e-3, 1.1e-3, 1e-3],
                        [{"contended": True, "throttled": False}]), peak_gflops=100.0, peak_label="fp32 measured peak",
                        error=1e-7, library="dlcb", algorithm="packed", kernel={"isa": "avx2"})
    theirs = timed_record(base_record(problem, numpy, **base), measured([2e-3, 2e-3, 2.1e-3]), peak_gflops=100.0,
                          peak_label="fp32 measured peak", error=1e-7, library="openblas", algorithm=None)
    failed = failed_record(base_record(GemmProblem(7, 7, 7), numpy, **base), "unavailable", "not installed")
    return compare_to_vendors([theirs, mine]) + [failed]


def test_records_are_typed_and_round_trip_through_json():
    theirs, mine, failed = records()
    assert mine.variant == ours_variant() and mine.provider == "ours" and mine.label("set") == "quick"
    assert mine.vs_best_vendor.variant == "numpy" and mine.vs_best_vendor.speedup == pytest.approx(2.0)
    assert mine.contended and mine.shaky and mine.status_mark == "ok*" and not theirs.shaky
    assert failed.status_mark == "unavailable" and not failed.shaky
    for record in (theirs, mine, failed):
        text = json.dumps(record.to_json())
        assert Record.from_json(json.loads(text)) == record
    assert "samples_ns" not in failed.to_json() and failed.to_json()["reason"] == "not installed"


def ours_variant():
    return select(["gemm"], "ours", backend="cpu")[0].variant


def test_a_table_round_trips_and_validates(tmp_path):
    doc = table.new_table()
    doc["runs"].append({"run_id": "r", "suite": "quick", "mpi": {"ranks": 1}, "caches": ["warm"]})
    doc["devices"].append({"id": "cpu:h", "kind": "cpu", "name": "CPU", "clock": {"measured_ghz": 3.0},
                           "peaks": {"fp32": {"measured_gflops": 100.0}}})
    doc["records"] = [r.to_json() for r in records()]
    typed = Table.from_json(json.loads(json.dumps(doc)))
    assert typed.to_json() == table.validate(json.loads(json.dumps(doc)))
    assert typed.runs[0].extra == {"mpi": {"ranks": 1}} and typed.devices[0].get("clock") == {"measured_ghz": 3.0}
    assert typed.device("cpu:h").peaks["fp32"]["measured_gflops"] == 100.0 and typed.device_ids() == ["cpu:h"]


def test_schema_version_1_records_get_their_variant_derived_once():
    raw = records()[1].to_json()
    del raw["variant"]
    del raw["vs_best_vendor"]["variant"]
    record = Record.from_json(raw)
    assert record.variant == ours_variant() and record.vs_best_vendor.variant == "numpy"


def test_block_conditions_flag_a_record_when_any_block_was():
    conditions = block_conditions([{"contended": False, "throttled": False},
                                   {"contended": True, "throttled": False, "clock_disturbed": True}])
    assert conditions["contended"] and conditions["clock_disturbed"] and not conditions["throttled"]
    assert len(conditions["blocks"]) == 2


def test_run_and_device_keep_unknown_fields():
    run = Run.from_json({"run_id": "x", "rank": 3, "machine_at_start": {"busy": True}})
    assert run.busy_at_start and run.to_json()["rank"] == 3
    device = Device.from_json({"id": "cuda:h:0", "kind": "gpu", "sm_count": 132})
    assert device.get("sm_count") == 132 and device.to_json()["sm_count"] == 132
