"""`pytest benchmarks/` as users run it (a subprocess): the harness's samples in pytest-benchmark,
a dlcb summary table at the end, the chosen suite, the table file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(ROOT / "benchmarks"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_benchmark_only_prints_the_dlcb_summary_and_writes_the_table(tmp_path):
    pytest.importorskip("pytest_benchmark")
    out = tmp_path / "t.json"
    result = run_pytest("--benchmark-only", "--dlcb-device", "cpu", "--dlcb-max-time", "0.05", "--dlcb-threads",
                        "1", "-k", "257x131x509 and (ours or numpy)", "--dlcb-table", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "dlcb: suite quick" in result.stdout
    # onnxruntime has no backward kernels (or is not installed): dropped at collection, one line a reason
    assert "dlcb: dropped" in result.stdout and "onnxruntime case(s): " in result.stdout
    assert "dlcb: 2 records on cpu:" in result.stdout
    summary = result.stdout.split("dlcb: 2 records on")[1]
    assert "GFLOP/s" in summary and "% peak" in summary and "geometric-mean speed of ours" in summary
    doc = json.loads(out.read_text())
    assert doc["runs"][0]["suite"] == "quick" and doc["runs"][0]["status"] == "complete"
    ours = next(r for r in doc["records"] if r["provider"] == "ours")
    assert ours["vs_best_vendor"]["variant"] == "numpy" and ours["samples_ns"]
    # pytest-benchmark's statistics are the harness's samples
    assert "test_benchmark[gemm-257x131x509-NN-numpy]" in result.stdout


def test_suite_option_collects_that_suite_and_drops_what_cannot_run():
    pytest.importorskip("pytest_benchmark")
    result = run_pytest("--collect-only", "-q", "--dlcb-device", "cpu", "--dlcb-suite", "deepbench-inference")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "dlcb: suite deepbench-inference" in result.stdout
    cases = [line for line in result.stdout.splitlines() if "test_benchmark[" in line]
    assert len(cases) > 100
    bad = run_pytest("--collect-only", "-q", "--dlcb-suite", "nonsense")
    assert bad.returncode != 0 and "nonsense" in bad.stderr


def test_without_benchmark_only_each_case_checks_its_result_once():
    pytest.importorskip("pytest_benchmark")
    result = run_pytest("--benchmark-disable", "--dlcb-device", "cpu", "-k", "257x131x509", "-q")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "passed" in result.stdout and "records on" not in result.stdout
