"""Multi-node inventory: `mpiexec -n P dlcb bench` measures each (host, device) once and rank 0
merges the ranks' tables; without a launcher, `dlcb bench` is the single-process run it was."""

import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dlcb_kernels import devices, registry, table
from dlcb_kernels.bench import BenchConfig, device_id, run_bench
from dlcb_kernels.comm.inventory import (
    DeviceGroup,
    Placement,
    PrefixedLines,
    group_of,
    group_ranks,
    merge_rank_tables,
    rank_gpu_index,
    rank_table_path,
)
from dlcb_kernels.measure import Settings
from dlcb_kernels.problems import GemmProblem
from dlcb_kernels.suites import SuiteProblem
from dlcb_kernels.summary import format_summary
from mpi_support import mpi_env, mpiexec_command, needs_mpi, without_launcher

TINY_BENCH = ["bench", "--shape", "64x64x64", "--impl", "ours", "--threads", "1",
              "--min-samples", "3", "--max-time", "0.2"]
# The variables by which MPI launchers announce a job: a test run under one must not pass them on.
def test_without_a_launcher_bench_is_one_process_quietly(tmp_path):
    out = tmp_path / "single.json"
    done = subprocess.run([sys.executable, "-m", "dlcb_kernels", *TINY_BENCH, "-o", str(out)], check=False,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=without_launcher())
    assert done.returncode == 0, done.stderr
    assert "mpi" not in done.stderr.lower()  # no MPI talk on a single-process run
    doc = table.load(out)
    (device,) = doc["devices"]
    assert device["id"] == f"cpu:{device['hostname']}"
    assert "ranks" not in device and "mpi" not in doc["runs"][0]
    assert doc["records"] and all(r["device_id"] == device["id"] for r in doc["records"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["single.csv", "single.json"]


# Grouping, placement and merging (no MPI) -----------------------------------------------------

def test_ranks_group_by_host_and_device_and_the_lowest_measures():
    placements = [Placement(4, "b", "cpu"), Placement(0, "a", "cpu"), Placement(3, "a", "cuda:0"),
                  Placement(1, "a", "cpu"), Placement(2, "b", "cpu")]
    groups = group_ranks(placements)
    assert groups == [DeviceGroup("a", "cpu", (0, 1)), DeviceGroup("b", "cpu", (2, 4)),
                      DeviceGroup("a", "cuda:0", (3,))]
    assert [g.measuring_rank for g in groups] == [0, 2, 3]
    assert group_of(groups, 4).block_fields() == {"host": "b", "ranks": [2, 4], "mpi_rank": 2}
    assert groups[0].describe() == "cpu on a by rank 0 (ranks 0, 1)"
    assert groups[2].describe() == "cuda:0 on a by rank 3"
    with pytest.raises(ValueError, match="rank 7 is in no device group"):
        group_of(groups, 7)


def test_gpus_group_by_their_pci_bus_id_and_one_label_cannot_name_two_gpus():
    shared = group_ranks([Placement(0, "a", "cuda:0", "0000:41:00.0"), Placement(1, "a", "cuda:0", "0000:41:00.0"),
                          Placement(2, "a", "cuda:1", "0000:42:00.0")])
    assert [g.ranks for g in shared] == [(0, 1), (2,)]
    with pytest.raises(ValueError, match="ranks 0 and 1 on a each call a different GPU cuda:0"):
        group_ranks([Placement(0, "a", "cuda:0", "0000:41:00.0"), Placement(1, "a", "cuda:0", "0000:42:00.0")])


def test_placements_are_checked():
    with pytest.raises(ValueError, match=r"rank\(s\) 1 placed more than once"):
        group_ranks([Placement(1, "a", "cpu"), Placement(1, "b", "cpu")])
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda:N'"):
        Placement(0, "a", "gpu")
    with pytest.raises(ValueError, match="host must be a non-empty string"):
        Placement(0, "", "cpu")
    with pytest.raises(ValueError, match="rank must be an int >= 0"):
        Placement(-1, "a", "cpu")


def test_ranks_spread_over_a_hosts_gpus_unless_one_is_named():
    assert [rank_gpu_index("auto", 0, local, 2) for local in range(4)] == [0, 1, 0, 1]
    assert rank_gpu_index("cuda", 0, 3, 4) == 3
    assert rank_gpu_index("cuda:1", 1, 0, 2) == 1
    assert rank_gpu_index("GPU:0", 0, 5, 8) == 0
    with pytest.raises(ValueError, match="no CUDA device"):
        rank_gpu_index("auto", 0, 0, 0)


def test_per_rank_tables_sit_beside_the_output():
    assert rank_table_path(Path("results/t.json"), 3) == Path("results/t.rank3.json")
    assert rank_table_path(Path("t"), 0) == Path("t.rank0")
    with pytest.raises(ValueError, match="rank must be an int >= 0"):
        rank_table_path(Path("t.json"), -1)


def test_device_ids_tell_hosts_and_gpus_apart():
    assert device_id({"kind": "cpu", "hostname": "node1"}) == "cpu:node1"
    assert device_id({"kind": "gpu", "index": 2, "host": "node1"}) == "cuda:node1:2"
    assert device_id({"kind": "gpu", "index": 0, "host": "node2"}) != device_id({"kind": "gpu", "index": 1,
                                                                                  "host": "node2"})


def rank_table(rank: int, host: str, ranks: list[int], status: str = "ok") -> dict:
    """A one-device, one-record table as rank `rank` on `host` would write it."""
    doc = table.new_table()
    device = {"kind": "cpu", "hostname": host, "name": f"CPU of {host}", "host": host, "ranks": ranks,
              "mpi_rank": rank}
    device["id"] = device_id(device)
    doc["runs"].append({"run_id": f"run-{rank}", "status": "complete", "rank": rank, "host": host,
                        "mpi": {"ranks": 4}})
    doc["devices"].append(device)
    record = {"run_id": f"run-{rank}", "device_id": device["id"], "op": "gemm", "problem": "gemm 8x8x8 NN",
              "implementation": "gemm/cpu/ours-avx2", "provider": "ours", "dtype": "float32", "cache": "warm",
              "status": status, "reason": None if status == "ok" else "error: injected"}
    if status == "ok":
        record.update(stats={"median": 1e-3}, gflops=1.0, gbs=1.0,
                      vs_best_vendor={"implementation": "gemm/cpu/numpy", "speedup": 2.0 if rank else 0.5})
    doc["records"].append(record)
    return doc


def test_merged_table_has_one_device_block_per_host_with_its_ranks():
    merged = merge_rank_tables([rank_table(0, "a", [0, 1]), rank_table(2, "b", [2, 3])])
    table.validate(merged)
    assert [(d["id"], d["host"], d["ranks"], d["mpi_rank"]) for d in merged["devices"]] == [
        ("cpu:a", "a", [0, 1], 0), ("cpu:b", "b", [2, 3], 2)]
    assert [(r["rank"], r["host"]) for r in merged["runs"]] == [(0, "a"), (2, "b")]
    assert [r["device_id"] for r in merged["records"]] == ["cpu:a", "cpu:b"]


def test_two_ranks_reporting_the_same_device_is_an_error_not_a_silent_merge():
    with pytest.raises(table.TableError, match="cpu:a measured by more than one rank"):
        merge_rank_tables([rank_table(0, "a", [0]), rank_table(1, "a", [1])])


def test_summary_of_a_merged_table_is_device_by_device():
    text = format_summary(merge_rank_tables([rank_table(0, "a", [0, 1]), rank_table(2, "b", [2, 3], "error")]))
    a, b = text.split("\n\n", 1)[0], text.split("device cpu:b", 1)[1]
    assert a.startswith("device cpu:a (CPU of a, MPI ranks 0, 1):") and "x0.500" in text
    assert b.startswith(" (CPU of b, MPI ranks 2, 3):") and "1 record(s) failed" in b
    assert "x0.500" not in b   # no geometric mean across devices


def test_run_bench_records_the_rank_and_the_ranks_sharing_the_device(tmp_path):
    device = devices.detect_cpu(threads=1, measure=False) | {
        "peaks": {"fp32": {"measured_gflops": 100.0, "measured_summary": "test"}}}
    impls = registry.select(["gemm"], "ours", backend="cpu")
    config = BenchConfig([SuiteProblem(GemmProblem(16, 16, 16), {"set": "test"})], impls, threads=1,
                         settings=Settings(min_samples=3, min_time=0.0, max_time=0.02, warmup_time=0.0, settle=0.0))
    doc = run_bench(config, tmp_path / "r.json", progress_stream=None, device=device,
                    run_fields={"rank": 3, "host": "h"}, device_fields={"host": "h", "ranks": [3, 4], "mpi_rank": 3})
    assert doc["runs"][0]["rank"] == 3 and doc["devices"][0]["ranks"] == [3, 4]
    assert table.load(tmp_path / "r.json")["devices"][0]["mpi_rank"] == 3


def test_prefixed_lines_prefix_every_complete_line():
    sink = io.StringIO()
    stream = PrefixedLines("[rank 1 h] ", sink)
    print("one", file=stream)
    stream.write("two\nthr")
    assert sink.getvalue() == "[rank 1 h] one\n[rank 1 h] two\n"
    stream.write("ee\n")
    assert sink.getvalue().endswith("[rank 1 h] three\n")


# Under mpiexec -----------------------------------------------------------------------------------

@pytest.mark.mpi
@needs_mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_mpi_job_merges_into_one_table_with_one_block_per_host_device(tmp_path, ranks):
    out = tmp_path / "job.json"
    done = subprocess.run([*mpiexec_command(ranks), sys.executable, "-m", "dlcb_kernels", *TINY_BENCH,
                           "-o", str(out)], check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=mpi_env())
    assert done.returncode == 0, done.stderr
    doc = table.load(out)
    (device,) = doc["devices"]
    host = socket.gethostname()
    assert (device["host"], device["ranks"], device["mpi_rank"]) == (host, list(range(ranks)), 0)
    (run,) = doc["runs"]
    assert (run["rank"], run["host"], run["mpi"]["ranks"]) == (0, host, ranks)
    assert doc["records"] and all(r["device_id"] == device["id"] and r["run_id"] == run["run_id"]
                                  for r in doc["records"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.csv", "job.json"]   # per-rank files removed
    assert f"MPI job of {ranks} ranks" in done.stderr
    if ranks == 2:
        assert f"rank 1 on {host} shares cpu with rank 0: not measuring" in done.stderr
    assert done.stdout.count("\ntable: ") == 1    # one summary, rank 0's


@pytest.mark.mpi
@needs_mpi
@pytest.mark.parametrize(("failing_rank", "module", "function"), [
    (0, "dlcb_kernels.bench", "run_bench"),                            # the measuring rank
    (1, "dlcb_kernels.comm.inventory", "wait_for_all_ranks"),          # the idle one
])
def test_a_failing_rank_ends_the_job_naming_itself(tmp_path, failing_rank, module, function):
    script = (
        "import importlib, os, sys\n"
        "from dlcb_kernels import cli\n"
        "rank = int(os.environ.get('OMPI_COMM_WORLD_RANK') or os.environ.get('PMI_RANK') or 0)\n"
        "def fail(*args, **kwargs):\n"
        "    raise RuntimeError('injected failure')\n"
        f"if rank == {failing_rank}:\n"
        f"    setattr(importlib.import_module({module!r}), {function!r}, fail)\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    out = tmp_path / "job.json"
    done = subprocess.run([*mpiexec_command(2), sys.executable, "-c", script, *TINY_BENCH, "-o", str(out)],
                          check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=mpi_env())
    assert done.returncode != 0
    assert f"rank {failing_rank} of 2 on {socket.gethostname()}: failed: RuntimeError: injected failure" \
        in done.stderr, done.stderr
    assert not out.exists()
