"""One measured peak per device: kept across runs at the highest probe (capped by the theoretical
peak where that is known), and merged tables hold their records against one peak per device."""

import os

import pytest

from dlcb_kernels import peak_store, table


def device(probe, theoretical=None, known=False, device_id="cpu:host"):
    return {"id": device_id, "kind": "cpu", "name": "Test CPU", "threads_used": 2, "kernels": {"default": "avx2"},
            "peaks": {"fp32": {"measured_gflops": probe, "measured_summary": "avx2 FMA throughput",
                               "theoretical_gflops": theoretical, "flop_per_cycle_known": known}}}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("DLCB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_later_runs_keep_the_highest_probe(store):
    first = peak_store.apply(device(100.0), when="t0")["peaks"]["fp32"]
    assert first["measured_gflops"] == 100.0 and first["kept"]["runs"] == 1
    second = peak_store.apply(device(80.0), when="t1")["peaks"]["fp32"]
    assert second["measured_gflops"] == 100.0 and second["measured_this_run_gflops"] == 80.0
    assert second["kept"] == {"runs": 2, "first": "t0", "store": str(peak_store.store_path(device(80.0)))}
    assert "highest of 2 run(s) on this device (this run 80.0)" in second["measured_summary"]
    third = peak_store.apply(device(120.0))["peaks"]["fp32"]
    assert third["measured_gflops"] == 120.0


def test_refresh_starts_again_and_off_keeps_nothing(store):
    peak_store.apply(device(100.0))
    assert peak_store.apply(device(80.0), "refresh")["peaks"]["fp32"]["measured_gflops"] == 80.0
    assert peak_store.apply(device(70.0), "off") == device(70.0)
    assert peak_store.apply(device(75.0))["peaks"]["fp32"]["measured_gflops"] == 80.0
    with pytest.raises(ValueError, match="peak-store"):
        peak_store.apply(device(1.0), "sometimes")


def test_another_device_or_thread_count_has_its_own_peak(store):
    peak_store.apply(device(100.0))
    assert peak_store.apply(device(50.0, device_id="cpu:other"))["peaks"]["fp32"]["measured_gflops"] == 50.0
    fewer = dict(device(30.0), threads_used=1)
    assert peak_store.apply(fewer)["peaks"]["fp32"]["measured_gflops"] == 30.0


def test_a_kept_peak_never_exceeds_the_theoretical_one(store):
    peak_store.apply(device(130.0))   # kept from a run whose FLOP/cycle was not known
    capped = peak_store.apply(device(100.0, theoretical=112.0, known=True))["peaks"]["fp32"]
    assert capped["measured_gflops"] == 112.0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_cache_leaves_the_run_with_its_own_probe(store):
    store.mkdir()
    store.chmod(0o500)
    try:
        result = peak_store.apply(device(90.0))
    finally:
        store.chmod(0o700)
    assert result["peaks"]["fp32"]["measured_gflops"] == 90.0 and "peak_store_error" in result


def test_an_unwritable_cache_path_leaves_the_run_with_its_own_probe(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DLCB_CACHE_DIR", str(blocker))
    result = peak_store.apply(device(90.0))
    assert result["peaks"]["fp32"]["measured_gflops"] == 90.0 and str(blocker) in result["peak_store_error"]


def _table(run_id, peak):
    doc = table.new_table()
    doc["runs"].append({"run_id": run_id})
    doc["devices"].append(device(peak))
    doc["records"].append({"run_id": run_id, "device_id": "cpu:host", "op": "gemm", "problem": "gemm 8x8x8 NN",
                           "implementation": "gemm/cpu/numpy", "variant": "numpy", "provider": "vendor",
                           "dtype": "float32", "cache": "warm", "status": "ok",
                           "stats": {"median": 1.0}, "gflops": 90.0, "percent_of_peak": 100.0 * 90.0 / peak,
                           "exceeds_peak": 90.0 > peak,
                           "peak": {"gflops": peak, "label": "fp32 measured peak (avx2 FMA throughput)"}})
    return doc


def test_merged_tables_hold_records_against_the_highest_peak_of_a_device():
    low, high = _table("a", 80.0), _table("b", 120.0)
    merged = table.merge([low, high])
    assert len(merged["devices"]) == 1 and merged["devices"][0]["peaks"]["fp32"]["measured_gflops"] == 120.0
    first = merged["records"][0]
    assert first["percent_of_peak"] == pytest.approx(75.0) and first["exceeds_peak"] is False
    assert "highest of the merged tables" in first["peak"]["label"]
    assert low["records"][0]["percent_of_peak"] == pytest.approx(112.5)  # the inputs are not changed
