"""Communication benchmarks: collectives as problems, α-β fits, and `dlcb bench comm` run under
mpiexec with 1, 2 and 4 (oversubscribed) ranks, including ranks that die, hang or raise."""

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
from mpi_support import needs_mpi, run_job, without_launcher

from dlcb_kernels import table
from dlcb_kernels.comm.collectives import (
    COLLECTIVES,
    CommProblem,
    bus_factor,
    deepbench_allreduce_sizes,
    format_bytes,
    parse_bytes,
    size_sweep,
)
from dlcb_kernels.comm.fit import fit_collective, fit_line, fit_regimes, leave_one_out, relative_errors
from dlcb_kernels.predict.scaling import allreduce_seconds, get_interconnect, interconnect_from_table

NEUTRAL_DIR = Path(tempfile.gettempdir())
FAST = ["--no-deepbench", "--min-samples", "3", "--max-time", "0.05", "--noise", "0.5"]


# Problems ----------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(collective=st.sampled_from(COLLECTIVES), nbytes=st.integers(1, 1 << 16), ranks=st.integers(1, 9),
       dtype=st.sampled_from(["float32", "float64"]))
def test_every_collectives_expected_output_follows_from_the_inputs(collective, nbytes, ranks, dtype):
    problem = CommProblem.rounded(collective, nbytes, ranks, dtype)
    assert problem.nbytes <= max(nbytes, problem.unit_bytes) and problem.nbytes % problem.unit_bytes == 0
    inputs = [problem.send_data(r) for r in range(ranks)]
    for rank in range(ranks):
        if collective == "allreduce":
            reference = np.sum(np.stack(inputs).astype(np.float64), axis=0)
        elif collective == "reducescatter":
            reference = np.sum(np.stack(inputs).astype(np.float64), axis=0)[rank * problem.chunk:(rank + 1) * problem.chunk]
        elif collective == "allgather":
            reference = np.concatenate(inputs)
        else:
            reference = inputs[0]
        expected = problem.expected(rank)
        assert expected.shape == (problem.recv_shape(),)
        np.testing.assert_array_equal(expected, reference)


def test_the_patterns_catch_a_shifted_or_partial_result():
    problem = CommProblem("allreduce", 4096, 3)
    expected = problem.expected(0)
    assert not np.array_equal(np.roll(expected, 1), expected)
    gathered = CommProblem("allgather", 4096 * 3, 3).expected(0)
    blocks = gathered.reshape(3, -1)
    assert not np.array_equal(blocks[0], blocks[1]) and not np.array_equal(blocks[1], blocks[2])


def test_bus_factors_are_the_nccl_tests_definitions():
    assert bus_factor("allreduce", 4) == pytest.approx(1.5)
    assert bus_factor("allgather", 4) == bus_factor("reducescatter", 4) == pytest.approx(0.75)
    assert bus_factor("broadcast", 8) == 1.0
    problem = CommProblem("allreduce", 1 << 20, 4)
    assert problem.busbw(1e-3) == pytest.approx((1 << 20) / 1e-3 * 1.5)


def test_problem_validation_names_the_argument():
    with pytest.raises(ValueError, match="collective"):
        CommProblem("alltoall", 8, 2)
    with pytest.raises(ValueError, match="dtype"):
        CommProblem("allreduce", 8, 2, "int8")
    with pytest.raises(ValueError, match="nbytes"):
        CommProblem("allreduce", 0, 2)
    with pytest.raises(ValueError, match="multiple of 8"):
        CommProblem("allgather", 12, 2)
    assert CommProblem.rounded("allgather", 12, 2).nbytes == 8
    assert CommProblem.rounded("reducescatter", 8, 4).nbytes == 16  # one element per rank at least


def test_sizes():
    assert size_sweep(8, 64) == [8, 16, 32, 64]
    assert len(size_sweep(8, 256 << 20)) == 26
    assert parse_bytes("256M") == 256 << 20 and parse_bytes("64KiB") == 65536 and parse_bytes("8") == 8
    for bad in ("", "1.5K", "-1", "12Q", "0"):
        with pytest.raises(ValueError):
            parse_bytes(bad)
    assert deepbench_allreduce_sizes()[0] == 100000 * 4 and max(deepbench_allreduce_sizes()) == 64500000 * 4
    assert format_bytes(64 << 20) == "64 MiB" and format_bytes(12) == "12 B"


# Fits --------------------------------------------------------------------------------------------

def test_line_fit_recovers_an_exact_alpha_beta_and_weighs_small_messages():
    n = np.array([2.0 ** k for k in range(10, 27)])
    t = 5e-6 + n / 4e9
    line = fit_line(n, t)
    assert line.latency_s == pytest.approx(5e-6, rel=1e-6)
    assert line.seconds_per_byte == pytest.approx(1 / 4e9, rel=1e-6)
    # Relative errors: a 10 % bump on the smallest message moves the fit, unlike ordinary least squares.
    bumped = t.copy()
    bumped[0] *= 1.1
    assert fit_line(n, bumped).latency_s > 5e-6


def test_regimes_find_a_protocol_switch_and_leave_one_out_is_honest():
    n = np.array([2.0 ** k for k in range(10, 27)])
    t = np.where(n <= 64 * 1024, 2e-6 + n / 2e9, 40e-6 + n / 8e9)
    regimes = fit_regimes(n, t)
    assert len(regimes.lines) == 2
    assert np.max(np.abs(relative_errors(regimes.predict, n, t))) < 1e-6
    assert fit_regimes(n, 3e-6 + n / 5e9).lines.__len__() == 1       # a straight line stays one
    single = np.abs(leave_one_out(n, t, fit_line))
    assert single.max() > 0.1                                          # one line cannot follow it


def test_fit_collective_turns_the_line_into_link_alpha_beta_the_predictor_reproduces():
    ranks = 4
    entries = [{"collective": "allreduce", "backend": "mpi", "ranks": ranks, "nbytes": int(n), "status": "ok",
                "stats": {"median": 6e-6 + n / 3e9}} for n in 2.0 ** np.arange(8, 28)]
    fit = fit_collective(entries, "allreduce", "mpi", ranks, 1024, 64 << 20)
    assert fit["alpha_s"] == pytest.approx(6e-6 / (2 * (ranks - 1)), rel=1e-6)
    assert fit["beta_bytes_per_s"] == pytest.approx(3e9 * 2 * (ranks - 1) / ranks, rel=1e-6)
    assert fit["errors"]["in_sample"]["max"] < 1e-6 and fit["errors"]["in_sample"]["within_10pct"] == 1.0
    doc = table.new_table()
    doc["communication"] = {"measurements": entries, "fits": [fit]}
    ic = interconnect_from_table(doc)
    for n in (4096, 1 << 20, 32 << 20):
        assert allreduce_seconds(n, ranks, ic) == pytest.approx(6e-6 + n / 3e9, rel=1e-6)
    assert fit_collective(entries, "allreduce", "mpi", 1, 1024, 64 << 20) is None   # p = 1 moves nothing
    assert fit_collective(entries[:3], "allreduce", "mpi", ranks, 1, 1 << 40) is None


def test_interconnect_from_table_uses_regimes_and_picks_the_rank_count():
    def fit(ranks, beta, regimes=()):
        return {"collective": "allreduce", "backend": "mpi", "ranks": ranks, "alpha_s": 1e-6,
                "beta_bytes_per_s": beta, "regimes": list(regimes)}

    small = {"min_bytes": 1024, "max_bytes": 4096, "alpha_s": 1e-6, "beta_bytes_per_s": 1e9}
    large = {"min_bytes": 16384, "max_bytes": 1 << 26, "alpha_s": 5e-6, "beta_bytes_per_s": 4e9}
    doc = table.new_table()
    doc["communication"] = {"fits": [fit(2, 2e9), fit(4, 3e9, [small, large])]}
    ic = get_interconnect("measured:mpi", doc)
    assert "4 ranks" in ic.name and ic.beta_bytes_per_s == 3e9
    assert ic.alpha_beta(2048) == (1e-6, 1e9) and ic.alpha_beta(1 << 20) == (5e-6, 4e9)
    assert ic.regimes[0][0] == pytest.approx(math.sqrt(4096 * 16384))
    assert interconnect_from_table(doc, ranks=2).beta_bytes_per_s == 2e9
    with pytest.raises(ValueError, match="no all-reduce fit at 8 ranks"):
        interconnect_from_table(doc, ranks=8)
    with pytest.raises(ValueError, match="backend 'nccl'"):
        get_interconnect("measured:nccl", doc)


def test_merge_concatenates_communication_and_keeps_what_each_device_block_knows():
    kernels, comm = table.new_table(), table.new_table()
    kernels["devices"].append({"id": "cpu:h", "name": "CPU", "peaks": {"fp32": {"measured_gflops": 1.0}}})
    comm["devices"].append({"id": "cpu:h", "name": "other", "ranks": [0, 1]})
    kernels["communication"] = {}
    measurement = {"collective": "allreduce", "backend": "mpi", "nbytes": 8, "ranks": 2}
    comm["communication"] = {"measurements": [measurement], "fits": [{"b": 2}]}
    second = json.loads(json.dumps(comm))
    merged = table.merge([kernels, comm, dict(second, runs=[])])
    assert merged["devices"] == [{"id": "cpu:h", "name": "CPU", "peaks": {"fp32": {"measured_gflops": 1.0}},
                                  "ranks": [0, 1]}]
    assert merged["communication"] == {"measurements": [measurement, measurement], "fits": [{"b": 2}, {"b": 2}]}


# Runs --------------------------------------------------------------------------------------------

def _mpirun(ranks: int, args: list[str], timeout: float = 120):
    return run_job(ranks, args, cwd=NEUTRAL_DIR, timeout=timeout)


def _check_table(path: Path, ranks: int, collectives) -> dict:
    doc = table.load(path)
    measurements = doc["communication"]["measurements"]
    assert {e["collective"] for e in measurements} == set(collectives)
    for entry in measurements:
        assert entry["status"] == "ok" and entry["max_error"] == 0.0 and entry["ranks"] == ranks
        assert len(entry["rank_medians_s"]) == ranks and entry["stats"]["median"] > 0
        assert math.isfinite(entry["busbw_gbs"]) and math.isfinite(entry["algbw_gbs"])
        if ranks > 1:
            assert entry["busbw_gbs"] > 0
    assert doc["devices"] and sorted(r for d in doc["devices"] for r in d["ranks"]) == list(range(ranks))
    assert doc["runs"][0]["status"] == "complete"
    return doc


@needs_mpi
def test_bench_comm_alone_is_a_one_rank_job_says_so_and_pools_rounds(tmp_path):
    path = tmp_path / "comm.json"
    out = subprocess.run([sys.executable, "-m", "dlcb_kernels", "bench", "comm", "--max-bytes", "4K",
                          "--collectives", "allreduce,broadcast", "--rounds", "2", *FAST, "-o", str(path)], check=False,
                         capture_output=True, text=True, timeout=120, cwd=NEUTRAL_DIR, env=without_launcher())
    assert out.returncode == 0, out.stderr
    assert "one rank (not started by mpirun/mpiexec)" in out.stderr
    doc = _check_table(path, 1, ("allreduce", "broadcast"))
    assert doc["communication"]["fits"] == []            # one rank: no link to fit
    for entry in doc["communication"]["measurements"]:   # two rounds, their samples pooled
        assert len(entry["rounds"]) == 2
        assert sum(r["samples"] for r in entry["rounds"]) == entry["stats"]["count"] == len(entry["samples_ns"])
    assert path.with_suffix(".csv").read_text().startswith("backend,collective,ranks")


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 4])
def test_bench_comm_under_mpiexec_checks_every_collective_and_fits_alpha_beta(tmp_path, ranks):
    path = tmp_path / "comm.json"
    out = _mpirun(ranks, ["-m", "dlcb_kernels", "bench", "comm", "--min-bytes", "1K", "--max-bytes", "256K",
                          "--fit-range", "1K:256K", *FAST, "-o", str(path)])
    assert out.returncode == 0, out.stderr[-3000:]
    doc = _check_table(path, ranks, COLLECTIVES)
    assert f"{ranks} rank(s) on 1 host(s)" in out.stderr
    assert out.stdout.count("α-β fits") == 1                    # rank 0 alone prints the summary
    fits = {f["collective"]: f for f in doc["communication"]["fits"]}
    assert set(fits) == set(COLLECTIVES)
    for fit in fits.values():
        assert fit["ranks"] == ranks and fit["alpha_s"] >= 0 and fit["beta_bytes_per_s"] > 0
        assert 0 <= fit["errors"]["leave_one_out"]["within_10pct"] <= 1
    assert interconnect_from_table(doc).beta_bytes_per_s == fits["allreduce"]["beta_bytes_per_s"]


# A rank that dies, hangs or raises: the job must fail, loudly and naming the rank, never hang.
FAULT_SCRIPT = """
import os, signal, sys, time
from mpi4py import MPI
from dlcb_kernels.cli import main
from dlcb_kernels.comm import backends

mode = sys.argv[1]
if MPI.COMM_WORLD.Get_rank() == 1:
    if mode == "hang":
        time.sleep(600)
    prepare = backends.MpiBackend.prepare

    def faulty(self, problem):
        if problem.nbytes >= 1024:
            if mode == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("injected failure")
        return prepare(self, problem)

    backends.MpiBackend.prepare = faulty
sys.exit(main(sys.argv[2:]))
"""


@needs_mpi
@pytest.mark.parametrize("mode, says", [("die", "rank 1"), ("hang", "rank(s) 1 did not reach"),
                                        ("raise", "rank 1 of 2")])
def test_a_rank_that_dies_hangs_or_raises_fails_the_job_loudly(tmp_path, mode, says):
    path = tmp_path / "comm.json"
    out = _mpirun(2, ["-c", FAULT_SCRIPT, mode, "bench", "comm", "--collectives", "allreduce", "--max-bytes", "4K",
                      "--timeout", "5", *FAST, "-o", str(path)], timeout=90)
    assert out.returncode != 0
    assert says in out.stderr, out.stderr[-3000:]
    if mode != "hang":
        # Everything measured before the failure is on disk, in a valid table.
        assert table.load(path)["communication"]["measurements"]


@needs_mpi
def test_nccl_without_cupy_or_a_gpu_is_refused_with_the_reason(tmp_path):
    from dlcb_kernels.comm.backends import NcclBackend
    from dlcb_kernels.comm.world import World

    reason = NcclBackend.unavailable_reason(World(comm=object()))
    if reason is None:
        pytest.skip("NCCL is usable here")
    out = subprocess.run([sys.executable, "-m", "dlcb_kernels", "bench", "comm", "--backend", "nccl", *FAST,
                          "-o", str(tmp_path / "comm.json")], check=False, capture_output=True, text=True,
                         timeout=120, cwd=NEUTRAL_DIR, env=without_launcher())
    assert out.returncode == 1
    assert "backend nccl is unavailable" in out.stderr and reason in out.stderr
    assert not (tmp_path / "comm.json").exists()


@needs_mpi
def test_nccl_collectives_on_the_gpus_are_exact(tmp_path):
    from dlcb_kernels.comm.backends import NcclBackend
    from dlcb_kernels.comm.world import World

    reason = NcclBackend.unavailable_reason(World(comm=object()))
    if reason is not None:
        pytest.skip(f"NCCL is not usable here: {reason}")
    import cupy

    ranks = cupy.cuda.runtime.getDeviceCount()       # one rank per GPU
    path = tmp_path / "nccl.json"
    out = _mpirun(ranks, ["-m", "dlcb_kernels", "bench", "comm", "--backend", "nccl", "--max-bytes", "16M",
                          "--fit-range", "1K:16M", *FAST, "-o", str(path)], timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = _check_table(path, ranks, COLLECTIVES)
    assert all(e["backend"] == "nccl" for e in doc["communication"]["measurements"])
    assert doc["runs"][0]["backend"]["library"].startswith("NCCL")
