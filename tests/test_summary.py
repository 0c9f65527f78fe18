"""The plain-text summary: shaky records (sampling stopped before the noise target) are marked,
and the geometric means say how many of their pairs are shaky and what they are without them."""

import pytest

from dlcb_kernels.summary import format_summary, speedup_geomeans, speedup_geomeans_with_noise


def record(problem, impl, median, converged, vendor=None, speedup=None):
    return {"device_id": "cpu:h", "problem": problem, "implementation": f"gemm/cpu/{impl}", "variant": impl,
            "provider": "ours" if impl == "ours" else "vendor", "dtype": "float32",
            "cache": "warm", "status": "ok", "op": "gemm", "set": "quick", "converged": converged,
            "stats": {"median": median}, "gflops": 1.0, "gbs": 1.0, "percent_of_peak": 10.0,
            "vs_best_vendor": {"implementation": f"gemm/cpu/{vendor}", "variant": vendor, "speedup": speedup,
                               "time_ratio": 1 / speedup} if vendor else None}


def table():
    return {"schema": "dlcb-kernels/throughput-table", "schema_version": 2, "runs": [],
            "devices": [{"id": "cpu:h"}], "records": [
        record("a", "numpy", 2.0, True), record("a", "ours", 1.0, True, "numpy", 2.0),
        record("b", "numpy", 1.0, False), record("b", "ours", 2.0, True, "numpy", 0.5),   # vendor shaky
        record("c", "numpy", 1.0, True), record("c", "ours", 1.0, False, "numpy", 1.0),   # ours shaky
        record("d", "numpy", 1.0, True), record("d", "ours", 0.5, True, "numpy", 2.0),
    ]}


def test_geomeans_with_and_without_shaky_pairs():
    key = ("gemm/cpu/ours", "quick", "-", "warm")
    mean, count, unsure, steady = speedup_geomeans_with_noise(table())[key]
    assert count == 4 and unsure == 2
    assert abs(mean - (2.0 * 0.5 * 1.0 * 2.0) ** 0.25) < 1e-12 and abs(steady - 2.0) < 1e-12
    assert speedup_geomeans(table())[key] == (mean, count)


def test_summary_marks_shaky_records_and_means():
    text = format_summary(table())
    rows = {line.split()[0] + line.split()[1]: line.split()[3] for line in text.splitlines()
            if line[:1] in "abcd" and len(line.split()) > 3}
    assert rows == {"anumpy": "ok", "aours": "ok", "bnumpy": "ok~", "bours": "ok", "cnumpy": "ok", "cours": "ok~",
                    "dnumpy": "ok", "dours": "ok"}
    assert "ok~: 2 record(s) stopped at their time limit before the noise target" in text
    assert "over 4 problems (2 shaky; x2.000 without them)" in text


def test_a_record_timed_on_a_busy_machine_is_marked_and_its_pairs_shaky():
    doc = table()
    doc["records"][6]["conditions"] = {"contended": True, "throttled": False}   # d's vendor
    doc["records"][0]["conditions"] = {"contended": True, "throttled": False}   # a's vendor, also
    doc["records"][0]["converged"] = False                                      # unconverged
    text = format_summary(doc)
    marks = {line.split()[0] + line.split()[1]: line.split()[3] for line in text.splitlines()
             if line[:1] in "abcd" and len(line.split()) > 3}
    assert marks["dnumpy"] == "ok*" and marks["anumpy"] == "ok~*" and marks["dours"] == "ok"
    assert "ok*: 2 record(s) timed while other processes used the CPUs" in text
    # every pair is shaky now but b's? a (vendor), b (vendor), c (ours), d (vendor): none steady
    assert "over 4 problems (4 shaky; none steady)" in text


def test_a_record_above_its_peak_is_flagged_not_printed():
    doc = table()
    doc["records"][1].update(percent_of_peak=104.2, exceeds_peak=True)
    text = format_summary(doc)
    assert "above!" in text and "104.2" not in text
    assert "above!: 1 record(s) faster than the peak they are held against" in text


def test_a_measured_peak_above_the_theoretical_one_is_capped():
    from dlcb_kernels.devices import _cpu_peak

    probe = {"gflops": 130.0, "wall_gflops": 129.0, "isa": "avx2", "threads": 1, "chains": 12,
             "instruction": "vfmadd231ps ymm"}
    entry = _cpu_peak(32, "Zen 4: table", 1, 3.5, probe, "FMA throughput",
                      flop_per_cycle_known=True)  # theoretical 112
    assert entry["measured_gflops"] == entry["theoretical_gflops"] == 112.0
    assert entry["measured_raw_gflops"] == 130.0 and "capped" in entry["measured_summary"]
    derived = _cpu_peak(32, "derived, as unknown", 1, 3.5, probe, "FMA throughput", flop_per_cycle_known=False)
    assert derived["measured_gflops"] == 130.0  # its FLOP/cycle came from the probe itself


def test_a_run_started_on_a_busy_machine_is_named_in_the_summary():
    doc = table()
    doc["runs"] = [{"run_id": "abcdef0123", "machine_at_start": {
        "other_busy_cpus": 0.97, "steal_fraction": 0.0, "load_average_1m": 1.2, "cpus": 2, "window_s": 0.5,
        "busy": True}}]
    assert "warning: run abcdef01: the machine is busy: other processes used 0.97 of its 2 CPUs" in format_summary(doc)
    doc["runs"][0]["machine_at_start"]["busy"] = False
    assert "warning" not in format_summary(doc)


def test_contention_sample_sees_a_busy_loop():
    import subprocess
    import sys

    from dlcb_kernels.measure import contention

    if contention.sample(0.1) is None:
        pytest.skip("no /proc here: nothing is claimed")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        state = contention.sample(0.6)
    finally:
        hog.kill()
    assert state["busy"] and state["other_busy_cpus"] > 0.5
