"""The throughput table: schema checks, atomic writes, CSV export, merging."""

import csv
import io
import json

import pytest

from dlcb_kernels import table
from dlcb_kernels.results import Record
from dlcb_kernels.table import TableError, TableWriter


def make_record(device_id="cpu:a", status="ok", median=0.01, impl="gemm/cpu/ours-avx512", provider="ours"):
    """A record as JSON (see typed() for the results.Record a writer takes)."""
    return {
        "run_id": "r", "device_id": device_id, "op": "gemm", "problem": "gemm 8x8x8 NN",
        "params": {"m": 8, "n": 8, "k": 8}, "implementation": impl, "provider": provider,
        "dtype": "float32", "cache": "warm", "status": status, "threads": 2, "flops": 1024,
        "bytes": 768, "arithmetic_intensity": 1024 / 768,
        "stats": {"median": median, "q1": median, "q3": median, "rel_noise": 0.0, "count": 10},
        "gflops": 1024 / median / 1e9, "gbs": 768 / median / 1e9, "percent_of_peak": 1.0,
        "peak": {"gflops": 100.0, "label": "fp32 measured"}, "error": {"value": 1e-7, "tolerance": 1e-5},
        "vs_best_vendor": {"implementation": "gemm/cpu/numpy", "speedup": 1.1, "time_ratio": 1 / 1.1},
        "reason": None, "library": "x",
    }


def typed(record: dict) -> Record:
    return Record.from_json(record)


def write_table(path, device_id="cpu:a", run_id="run-a", records=None):
    writer = TableWriter(path, {"run_id": run_id, "status": "running"}, {"id": device_id, "kind": "cpu"})
    writer.append([typed(r) for r in records] if records is not None else [typed(make_record(device_id))])
    writer.finish("complete", "2026-01-01T00:00:00+00:00")
    return writer


def test_roundtrip(tmp_path):
    path = tmp_path / "t.json"
    write_table(path)
    doc = table.load(path)
    assert doc["schema"] == table.SCHEMA and doc["schema_version"] == table.SCHEMA_VERSION
    assert doc["runs"][0]["status"] == "complete"
    assert len(doc["records"]) == 1 and doc["records"][0]["gflops"] == pytest.approx(1.024e-4)


def test_writer_leaves_no_temporary_files_and_valid_json_after_each_append(tmp_path):
    path = tmp_path / "t.json"
    writer = TableWriter(path, {"run_id": "r", "status": "running"}, {"id": "cpu:a"})
    for i in range(3):
        writer.append([typed(make_record())])
        assert len(json.loads(path.read_text())["records"]) == i + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_non_finite_values_are_refused_not_written_as_nan(tmp_path):
    path = tmp_path / "t.json"
    writer = TableWriter(path, {"run_id": "r"}, {"id": "cpu:a"})
    with pytest.raises(ValueError):
        writer.append([typed(make_record()).replace(gflops=float("nan"))])
    json.loads(path.read_text())  # the previous version is intact
    assert table.finite_or_none(float("inf")) is None and table.finite_or_none(2) == 2.0


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a dlcb-kernels throughput table"),
    ('{"schema": "other"}', "not a dlcb-kernels throughput table"),
    ('{"schema": "dlcb-kernels/throughput-table", "schema_version": 99, "runs": [], "devices": [], "records": []}',
     "schema version 99"),
    ('{"schema": "dlcb-kernels/throughput-table", "schema_version": "1", "runs": [], "devices": [], "records": []}',
     "schema_version must be an int"),
    ('{"schema": "dlcb-kernels/throughput-table", "schema_version": 1, "runs": [], "devices": [], "records": {}}',
     "records must be array"),
])
def test_corrupt_or_foreign_files_get_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TableError, match=message):
        table.load(path)


def test_record_checks(tmp_path):
    doc = table.new_table()
    doc["devices"].append({"id": "cpu:a"})
    doc["records"].append(make_record(device_id="cpu:zzz"))
    with pytest.raises(TableError, match="not in devices"):
        table.validate(doc)
    doc["records"] = [dict(make_record(), status="great")]
    with pytest.raises(TableError, match=r"records\[0\]\.status must be one of"):
        table.validate(doc)
    rec = make_record()
    del rec["cache"]
    doc["records"] = [rec]
    with pytest.raises(TableError, match=r"records\[0\] lacks the field 'cache'"):
        table.validate(doc)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        table.load(tmp_path / "absent.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TableError):
        table.load(tmp_path / "bin.json")


def test_merge_keeps_devices_apart(tmp_path):
    write_table(tmp_path / "a.json", "cpu:a", "run-a")
    write_table(tmp_path / "b.json", "cpu:b", "run-b")
    merged = table.merge([table.load(tmp_path / "a.json"), table.load(tmp_path / "b.json")])
    assert [d["id"] for d in merged["devices"]] == ["cpu:a", "cpu:b"]
    assert {r["device_id"] for r in merged["records"]} == {"cpu:a", "cpu:b"}
    table.validate(merged)
    with pytest.raises(TableError, match="more than one table"):
        table.merge([table.load(tmp_path / "a.json"), table.load(tmp_path / "a.json")])


def test_csv_export_has_one_row_per_record(tmp_path):
    write_table(tmp_path / "a.json", records=[make_record(), make_record(status="unavailable")])
    doc = table.load(tmp_path / "a.json")
    rows = list(csv.DictReader(io.StringIO(table.to_csv(doc))))
    assert len(rows) == 2 and list(rows[0]) == list(table.CSV_COLUMNS)
    assert rows[0]["speedup_vs_vendor"] == "1.1" and rows[1]["status"] == "unavailable"
    table.write_csv(tmp_path / "a.csv", doc)
    assert (tmp_path / "a.csv").read_text() == table.to_csv(doc)
