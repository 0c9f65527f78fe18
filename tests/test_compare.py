"""dlcb compare: verdicts from synthetic sample distributions, record and device matching, and the
command line run in a subprocess on tables built here."""

import csv
import io
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcb_kernels import table
from dlcb_kernels.report.compare import (
    CompareSettings,
    compare_tables,
    mann_whitney_p,
    median_ratio_interval,
    pair_devices,
    verdict,
)

NEUTRAL_DIR = Path(tempfile.gettempdir())  # away from a source tree that could shadow the package
EXIT_REGRESSION = 4


def timings(seed: int, median_s: float = 1e-3, noise: float = 0.02, count: int = 60) -> np.ndarray:
    """Log-normal sample times around median_s, as a quiet machine gives them."""
    return median_s * np.exp(np.random.default_rng(seed).normal(0.0, noise, count))


def record(samples_s=None, *, problem="gemm 64x64x64 NN", impl="gemm/cpu/ours", op="gemm", status="ok",
           device_id="cpu:test", cache="warm", dtype="float32", keep_samples=True, reason=None) -> dict:
    rec = {"run_id": "run", "device_id": device_id, "op": op, "problem": problem, "implementation": impl,
           "provider": "ours" if impl.split("/")[-1].startswith("ours") else "vendor", "dtype": dtype, "cache": cache,
           "status": status, "reason": reason, "stats": None, "samples_ns": []}
    if status == "ok":
        samples = np.asarray(samples_s)
        rec["stats"] = {"count": float(samples.size), "median": float(np.median(samples)),
                        "q1": float(np.quantile(samples, 0.25)), "q3": float(np.quantile(samples, 0.75))}
        if keep_samples:
            rec["samples_ns"] = [round(s * 1e9) for s in samples]
    return rec


def make_table(records, device_ids=None) -> dict:
    doc = table.new_table()
    doc["runs"].append({"run_id": "run", "status": "complete"})
    for device_id in device_ids or dict.fromkeys(r["device_id"] for r in records):
        doc["devices"].append({"id": device_id, "name": f"test device {device_id}"})
    doc["records"].extend(records)
    return doc


def compare_one(old_samples, new_samples, **settings_kw) -> dict:
    result = compare_tables(make_table([record(old_samples)]), make_table([record(new_samples)]),
                            CompareSettings(**settings_kw))
    (row,) = result["rows"]
    return row


# --- verdicts on synthetic distributions -------------------------------------------------------

@pytest.mark.parametrize("shaky_side", ["old", "new", "both"])
def test_a_pair_that_missed_its_noise_target_gets_no_confident_verdict(shaky_side):
    old, new = record(timings(1)), record(timings(2, median_s=2e-3))  # clearly slower, tight samples
    for side, rec in (("old", old), ("new", new)):
        rec["converged"] = shaky_side not in (side, "both")
    result = compare_tables(make_table([old]), make_table([new]), CompareSettings())
    (row,) = result["rows"]
    assert row["verdict"] == "ambiguous" and "would be slower" in row["note"] and "noise target" in row["note"]
    assert result["regressions"] == 0
    for rec in (old, new):
        rec["converged"] = True
    (row,) = compare_tables(make_table([old]), make_table([new]), CompareSettings())["rows"]
    assert row["verdict"] == "slower"


def test_same_distribution_different_seeds_is_same():
    row = compare_one(timings(1), timings(2))
    assert row["verdict"] == "same"
    assert row["ci_low"] <= row["ratio"] <= row["ci_high"]
    assert 1 / 1.05 <= row["ci_low"] and row["ci_high"] <= 1.05
    assert row["basis"] == "samples" and row["old_samples"] == row["new_samples"] == 60
    assert row["p_value"] > 0.01


def test_twenty_percent_slower_is_slower_and_a_regression():
    old, new = timings(1), timings(2, median_s=1.2e-3)
    row = compare_one(old, new)
    assert row["verdict"] == "slower"
    assert row["ratio"] == pytest.approx(1.2, rel=0.02)
    assert row["ci_low"] > 1.05
    assert row["p_value"] < 1e-6


def test_twenty_percent_faster_is_faster():
    row = compare_one(timings(1), timings(2, median_s=0.8e-3))
    assert row["verdict"] == "faster"
    assert row["ci_high"] < 1 / 1.05


def test_noisy_runs_with_a_small_shift_are_ambiguous():
    # 30 % noise and 15 samples: the interval straddles the threshold, whichever way the truth lies
    row = compare_one(timings(1, noise=0.3, count=15), timings(2, median_s=1.05e-3, noise=0.3, count=15))
    assert row["verdict"] == "ambiguous"
    assert row["ci_low"] < 1 / 1.05 or row["ci_high"] > 1.05


def test_threshold_decides_whether_an_eight_percent_change_counts():
    old, new = timings(1, noise=0.01), timings(2, median_s=1.08e-3, noise=0.01)
    assert compare_one(old, new, threshold=0.05)["verdict"] == "slower"
    assert compare_one(old, new, threshold=0.15)["verdict"] == "same"
    # a threshold inside the interval: the data cannot say which side of it the change is
    row = compare_one(old, new, threshold=0.08)
    assert row["ci_low"] < 1.08 < row["ci_high"] and row["verdict"] == "ambiguous"


def test_intervals_are_reproducible_and_follow_the_seed():
    old, new = timings(1, noise=0.1, count=20), timings(2, noise=0.1, count=20)
    first, again = compare_one(old, new), compare_one(old, new)
    assert (first["ci_low"], first["ci_high"]) == (again["ci_low"], again["ci_high"])
    other = compare_one(old, new, seed=7)
    assert (other["ci_low"], other["ci_high"]) != (first["ci_low"], first["ci_high"])
    assert other["ratio"] == first["ratio"]


def test_higher_confidence_widens_the_interval():
    old, new = timings(1, noise=0.1, count=30), timings(2, noise=0.1, count=30)
    narrow, wide = compare_one(old, new, confidence=0.5), compare_one(old, new, confidence=0.99)
    assert wide["ci_low"] < narrow["ci_low"] and narrow["ci_high"] < wide["ci_high"]


@settings(max_examples=25, deadline=None)
@given(factor=st.floats(1.25, 4.0), seed=st.integers(0, 2**16), median=st.floats(1e-6, 1.0))
def test_swapping_old_and_new_swaps_slower_and_faster(factor, seed, median):
    old, new = timings(seed, median_s=median, count=30), timings(seed + 1, median_s=median * factor, count=30)
    forward, backward = compare_one(old, new), compare_one(new, old)
    assert (forward["verdict"], backward["verdict"]) == ("slower", "faster")
    assert forward["ratio"] * backward["ratio"] == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(low=st.floats(0.01, 100), width=st.floats(0, 10), threshold=st.floats(0.001, 1))
def test_verdict_of_the_mirrored_interval_is_mirrored(low, width, threshold):
    high = low * (1 + width)
    mirror = {"faster": "slower", "slower": "faster", "same": "same", "ambiguous": "ambiguous"}
    assert verdict(1 / high, 1 / low, threshold) == mirror[verdict(low, high, threshold)]


def test_verdict_boundaries():
    assert verdict(1.06, 1.2, 0.05) == "slower"
    assert verdict(1.0, 1.05, 0.05) == "same"
    assert verdict(0.8, 0.9, 0.05) == "faster"
    assert verdict(0.9, 1.0, 0.05) == "ambiguous"
    with pytest.raises(ValueError, match="low"):
        verdict(1.2, 1.1, 0.05)


def test_median_ratio_interval_checks_its_samples():
    with pytest.raises(ValueError, match="old_samples"):
        median_ratio_interval([], [1.0, 2.0])
    with pytest.raises(ValueError, match="new_samples"):
        median_ratio_interval([1.0, 2.0], [1.0, -2.0])
    with pytest.raises(ValueError, match="confidence"):
        median_ratio_interval([1.0, 2.0], [1.0, 2.0], confidence=1.0)


def test_mann_whitney_normal_approximation():
    separated = mann_whitney_p(np.arange(1, 11), np.arange(11, 21))
    # U = 0, mean 50, variance 10*10*21/12 = 175; continuity-corrected z = 49.5 / sqrt(175)
    assert separated == pytest.approx(math.erfc(49.5 / math.sqrt(175) / math.sqrt(2)))
    assert mann_whitney_p(np.arange(11, 21), np.arange(1, 11)) == pytest.approx(separated)
    assert mann_whitney_p(np.full(10, 5.0), np.full(12, 5.0)) == 1.0
    assert mann_whitney_p(timings(1), timings(2)) > 0.01
    assert mann_whitney_p(np.arange(1, 8), np.arange(1, 20)) is None  # too few for the approximation


def test_settings_are_validated():
    with pytest.raises(ValueError, match="threshold"):
        CompareSettings(threshold=0)
    with pytest.raises(ValueError, match="confidence"):
        CompareSettings(confidence=1.5)
    with pytest.raises(TypeError, match="resamples"):
        CompareSettings(resamples=2000.0)
    with pytest.raises(ValueError, match="resamples"):
        CompareSettings(resamples=10)
    with pytest.raises(ValueError, match="seed"):
        CompareSettings(seed=-1)


# --- matching records and devices ---------------------------------------------------------------

def test_unmatched_and_not_ok_records_are_listed_never_dropped():
    same = timings(1)
    old = make_table([
        record(same, problem="p-both"),
        record(same, problem="p-removed"),
        record(same, problem="p-breaks"),
        record(problem="p-fixed", status="failed", reason="max error 0.3 > 1e-4"),
        record(problem="p-unavailable", status="unavailable", reason="torch is not installed"),
        record(same, problem="p-uninstalled"),
        record(problem="p-gone", status="failed", reason="max error 0.3 > 1e-4"),
        record(problem="p-swapped", status="failed", reason="max error 0.3 > 1e-4"),
    ])
    new = make_table([
        record(timings(2), problem="p-both"),
        record(same, problem="p-breaks", status="failed", reason="max error 0.3 > 1e-4"),
        record(same, problem="p-fixed"),
        record(problem="p-unavailable", status="unavailable", reason="torch is not installed"),
        record(problem="p-uninstalled", status="unavailable", reason="torch is not installed"),
        record(same, problem="p-new"),
        record(problem="p-new-unavailable", status="unavailable", reason="no GPU"),
        record(problem="p-swapped", status="unavailable", reason="no GPU"),
    ])
    result = compare_tables(old, new)
    verdicts = {row["problem"]: row["verdict"] for row in result["rows"]}
    assert verdicts == {"p-both": "same", "p-removed": "removed", "p-breaks": "failed in new",
                        "p-fixed": "failed in old", "p-unavailable": "unavailable",
                        "p-uninstalled": "unavailable in new", "p-new": "new",
                        "p-new-unavailable": "new (unavailable)", "p-gone": "removed (failed)",
                        "p-swapped": "failed → unavailable"}
    # a kernel that now fails its correctness check is a regression; a missing library is not
    assert result["regressions"] == 1
    breaks = next(row for row in result["rows"] if row["problem"] == "p-breaks")
    assert breaks["old_median_s"] == pytest.approx(np.median(same)) and breaks["new_median_s"] is None
    assert "failed in new: max error" in breaks["note"]
    assert sum(result["tally"].values()) == len(result["rows"]) == 10


def test_match_key_includes_implementation_dtype_and_cache():
    base = timings(1)
    old = make_table([record(base), record(base, impl="gemm/cpu/numpy"), record(base, cache="cold"),
                      record(base, dtype="float16")])
    new = make_table([record(base * 1.3), record(base, impl="gemm/cpu/numpy"), record(base, cache="cold"),
                      record(base, dtype="float16")])
    rows = compare_tables(old, new)["rows"]
    assert [(r["implementation"], r["cache"], r["dtype"], r["verdict"]) for r in rows] == [
        ("gemm/cpu/ours", "warm", "float32", "slower"), ("gemm/cpu/numpy", "warm", "float32", "same"),
        ("gemm/cpu/ours", "cold", "float32", "same"), ("gemm/cpu/ours", "warm", "float16", "same")]


def test_records_without_samples_fall_back_to_quartiles_and_say_so():
    old = make_table([record(timings(1), keep_samples=False)])
    new = make_table([record(timings(2, median_s=2e-3))])
    (row,) = compare_tables(old, new)["rows"]
    assert row["basis"] == "stats" and row["p_value"] is None
    assert "quartiles" in row["note"] and "old" in row["note"]
    assert row["verdict"] == "slower" and row["ratio"] == pytest.approx(2.0, rel=0.05)
    # the quartile bounds are wide: the same run against itself is not declared "same" on them
    (row,) = compare_tables(make_table([record(timings(1, noise=0.1), keep_samples=False)]),
                            make_table([record(timings(1, noise=0.1), keep_samples=False)]))["rows"]
    assert row["verdict"] == "ambiguous"


def test_geomean_per_implementation_and_op():
    old = make_table([record(timings(i), problem=f"p{i}") for i in range(3)]
                     + [record(timings(9), problem="q", impl="conv/cpu/ours", op="conv")])
    new = make_table([record(timings(i + 10, median_s=f), problem=f"p{i}") for i, f in
                      enumerate((1.1e-3, 1.2e-3, 1.3e-3))]
                     + [record(timings(19), problem="q", impl="conv/cpu/ours", op="conv")])
    groups = {(g["implementation"], g["op"]): g for g in compare_tables(old, new)["geomean"]}
    assert groups[("gemm/cpu/ours", "gemm")]["count"] == 3
    assert groups[("gemm/cpu/ours", "gemm")]["geomean_ratio"] == pytest.approx((1.1 * 1.2 * 1.3) ** (1 / 3), rel=0.02)
    assert groups[("conv/cpu/ours", "conv")]["geomean_ratio"] == pytest.approx(1.0, abs=0.03)


def test_filters_by_op_and_implementation():
    records = [record(timings(1)), record(timings(1), impl="gemm/cpu/numpy"),
               record(timings(1), op="conv", impl="conv/cpu/ours", problem="conv p")]
    doc = make_table(records)
    rows = compare_tables(doc, make_table([dict(r) for r in records]), ops=["gemm"], impls=["numpy"])["rows"]
    assert [r["implementation"] for r in rows] == ["gemm/cpu/numpy"]
    rows = compare_tables(doc, doc, impls=["ours"])["rows"]
    assert [r["implementation"] for r in rows] == ["gemm/cpu/ours", "conv/cpu/ours"]
    with pytest.raises(TypeError, match="ops"):
        compare_tables(doc, doc, ops="gemm")


def test_one_device_each_is_compared_across_device_ids():
    old = make_table([record(timings(1), device_id="cpu:host-a")])
    new = make_table([record(timings(2, median_s=0.5e-3), device_id="cpu:host-b")])
    result = compare_tables(old, new)
    assert result["device_pairs"] == [["cpu:host-a", "cpu:host-b"]]
    (row,) = result["rows"]
    assert (row["old_device"], row["new_device"], row["verdict"]) == ("cpu:host-a", "cpu:host-b", "faster")


def test_several_devices_pair_by_id_and_never_guess(tmp_path):
    def two_devices(ids, gpu_factor):
        return make_table([record(timings(1), device_id=ids[0]),
                           record(timings(2, median_s=1e-3 * gpu_factor), device_id=ids[1])])

    old = two_devices(["cpu:h", "cuda:h:0"], 1.0)
    new = two_devices(["cpu:h", "cuda:h:0"], 1.5)
    rows = compare_tables(old, new)["rows"]
    assert [(r["old_device"], r["new_device"], r["verdict"]) for r in rows] == [
        ("cpu:h", "cpu:h", "same"), ("cuda:h:0", "cuda:h:0", "slower")]

    # a device in one table only: its records are listed as new (or removed), not paired with another
    partly = two_devices(["cpu:h", "cuda:h:1"], 1.0)
    rows = compare_tables(old, partly)["rows"]
    assert [(r["old_device"], r["new_device"], r["verdict"]) for r in rows] == [
        ("cpu:h", "cpu:h", "same"), ("cuda:h:0", None, "removed"), (None, "cuda:h:1", "new")]

    files = {"old": tmp_path / "old.json", "partly": tmp_path / "partly.json"}
    table.write_atomic(files["old"], old)
    table.write_atomic(files["partly"], partly)
    out = dlcb("compare", files["old"], files["partly"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("| device |")
    assert "on cpu:h (cuda:h:0 only in OLD) (cuda:h:1 only in NEW): 1 same, 1 new, 1 removed" in out.stdout

    other_host = two_devices(["cpu:g", "cuda:g:0"], 1.0)
    with pytest.raises(ValueError, match="no id in common.*--device"):
        compare_tables(old, other_host)
    result = compare_tables(old, other_host, devices=["cuda:h:0=cuda:g:0"])
    assert result["device_pairs"] == [["cuda:h:0", "cuda:g:0"]]
    assert [(r["old_device"], r["new_device"]) for r in result["rows"]] == [("cuda:h:0", "cuda:g:0")]
    with pytest.raises(ValueError, match="cuda:x:0.*has no records in NEW"):
        pair_devices(old, other_host, ["cuda:h:0=cuda:x:0"])
    with pytest.raises(ValueError, match="more than once"):
        pair_devices(old, other_host, ["cuda:h:0=cuda:g:0", "cpu:h=cuda:g:0"])


def test_duplicate_records_of_one_device_are_an_error():
    doc = make_table([record(timings(1)), record(timings(2))])
    with pytest.raises(ValueError, match="two records"):
        compare_tables(doc, make_table([record(timings(1))]))


def test_tables_without_kernel_records_are_an_error():
    empty = make_table([], device_ids=["cpu:test"])
    with pytest.raises(ValueError, match="OLD has no kernel records"):
        compare_tables(empty, make_table([record(timings(1))]))
    with pytest.raises(table.TableError, match="NEW"):
        compare_tables(make_table([record(timings(1))]), {"records": []})


# --- the command line ---------------------------------------------------------------------------

def dlcb(*args):
    return subprocess.run([sys.executable, "-m", "dlcb_kernels", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=120, cwd=NEUTRAL_DIR)


@pytest.fixture
def table_files(tmp_path):
    """old.json; steady.json (the same speeds, other samples, one record more); slower.json (one
    problem 30 % slower)."""
    def problems(factor, seeds):
        return [record(timings(seeds[0]), problem="gemm 64x64x64 NN"),
                record(timings(seeds[1], median_s=2e-3 * factor), problem="gemm 128x128x128 NN"),
                record(problem="gemm 64x64x64 NN", impl="gemm/cpu/torch", status="unavailable",
                       reason="torch is not installed")]

    paths = {}
    for name, factor, seeds, extra in (("old", 1.0, (1, 2), []), ("steady", 1.0, (3, 4), [record(timings(5),
                                       problem="gemm 256x256x256 NN")]), ("slower", 1.3, (3, 4), [])):
        paths[name] = tmp_path / f"{name}.json"
        table.write_atomic(paths[name], make_table(problems(factor, seeds) + extra))
    return paths


def test_cli_json_without_regression_exits_0(table_files):
    out = dlcb("compare", table_files["old"], table_files["steady"], "--format", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [row["verdict"] for row in result["rows"]] == ["same", "same", "unavailable", "new"]
    assert result["settings"] == {"threshold": 0.05, "confidence": 0.95, "resamples": 2000, "seed": 0}
    assert result["tally"]["same"] == 2 and result["tally"]["new"] == 1 and result["regressions"] == 0
    assert result["old"].endswith("old.json") and result["geomean"][0]["count"] == 2


def test_cli_markdown_regression_exits_4(table_files):
    out = dlcb("compare", table_files["old"], table_files["slower"])
    assert out.returncode == EXIT_REGRESSION, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("| op | problem | impl |") and set(lines[1]) <= {"|", "-"}
    slower = next(line for line in lines if "gemm 128x128x128 NN" in line)
    cells = [cell.strip() for cell in slower.strip("|").split("|")]
    assert cells[-2] == "**slower**" and float(cells[7]) == pytest.approx(1.3, rel=0.02)
    assert "1 slower" in lines[-1] and "1 regression (exit status 4)" in lines[-1]
    assert "geomean new/old" in out.stdout
    # a looser threshold forgives it
    assert dlcb("compare", table_files["old"], table_files["slower"], "--threshold", "0.5").returncode == 0


def test_cli_csv_to_a_file(table_files, tmp_path):
    path = tmp_path / "out" / "cmp.csv"
    out = dlcb("compare", table_files["old"], table_files["slower"], "--format", "csv", "-o", path,
               "--impl", "ours")
    assert out.returncode == EXIT_REGRESSION and out.stdout == ""
    assert "1 regression" in out.stderr and str(path) in out.stderr
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [(r["problem"], r["verdict"]) for r in rows] == [("gemm 64x64x64 NN", "same"),
                                                             ("gemm 128x128x128 NN", "slower")]
    assert float(rows[1]["ci_low"]) > 1.05 and rows[1]["basis"] == "samples" and rows[1]["new_samples"] == "60"


def test_cli_errors(table_files, tmp_path):
    not_a_table = tmp_path / "other.json"
    not_a_table.write_text('{"hello": 1}')
    out = dlcb("compare", table_files["old"], not_a_table)
    assert out.returncode == 1 and "dlcb: error:" in out.stderr and "not a dlcb-kernels throughput table" in out.stderr
    out = dlcb("compare", table_files["old"], tmp_path / "missing.json")
    assert out.returncode == 1 and "no such table file" in out.stderr
    out = dlcb("compare", table_files["old"], table_files["steady"], "--device", "cpu:elsewhere")
    assert out.returncode == 1 and "cpu:elsewhere" in out.stderr
    out = dlcb("compare", table_files["old"], table_files["steady"], "--confidence", "95")
    assert out.returncode == 2 and "between 0 and 1" in out.stderr


def test_collective_timings_of_dlcb_bench_comm_are_compared_too():
    def comm_table(scale: float, seed: int) -> dict:
        doc = table.new_table()
        doc["runs"].append({"run_id": "run", "status": "complete"})
        doc["devices"].append({"id": "cpu:host", "name": "host CPU", "ranks": [0, 1]})
        entries = []
        for offset, nbytes in enumerate((1024, 1 << 20)):
            samples = timings(seed + offset, median_s=1e-4 * scale * (1 + offset))
            entries.append({"collective": "allreduce", "backend": "mpi", "ranks": 2, "nbytes": nbytes,
                            "dtype": "float32", "status": "ok", "samples_ns": [round(s * 1e9) for s in samples],
                            "stats": {"median": float(np.median(samples))}})
        entries.append({"collective": "broadcast", "backend": "mpi", "ranks": 2, "nbytes": 8, "dtype": "float32",
                        "status": "failed", "reason": "wrong result"})
        doc["communication"] = {"measurements": entries, "fits": []}
        return doc

    result = compare_tables(comm_table(1.0, 1), comm_table(1.3, 7))
    rows = {row["problem"]: row for row in result["rows"]}
    assert set(rows) == {"allreduce 1024 B p2", "allreduce 1048576 B p2", "broadcast 8 B p2"}
    assert rows["allreduce 1024 B p2"]["verdict"] == rows["allreduce 1048576 B p2"]["verdict"] == "slower"
    assert rows["allreduce 1024 B p2"]["implementation"] == "comm/mpi/allreduce" and rows["broadcast 8 B p2"]["op"] == "comm"
    assert rows["broadcast 8 B p2"]["verdict"] == "failed"
    assert result["regressions"] == 2
    assert compare_tables(comm_table(1.0, 1), comm_table(1.3, 7), ops=["gemm"])["rows"] == []
