"""The benchmark runner in-process: verification before timing, unavailable implementations,
ours-vs-vendor comparison, incremental writes."""

import contextlib
import json

import numpy as np
import pytest

from dlcb_kernels import devices, registry
from dlcb_kernels.bench import BenchConfig, run_bench
from dlcb_kernels.measure import Settings
from dlcb_kernels.problems import GemmProblem
from dlcb_kernels.suites import SuiteProblem

FAST = Settings(min_samples=3, min_time=0.0, max_time=0.05, warmup_time=0.0, settle=0.0)


def fake_impl(variant, provider, compute, reason=None):
    calls = []

    @contextlib.contextmanager
    def prepare(problem, inputs, threads):
        out = np.empty((problem.m, problem.n), np.float32)

        def run():
            calls.append(1)
            out[:] = compute(inputs)

        yield registry.PreparedRun(run, out, threads, "fake")

    impl = registry.Implementation("gemm", "cpu", variant, provider, lambda: f"fake {variant}",
                                   lambda problem=None: reason, prepare)
    return impl, calls


def right(inputs):
    return inputs["a"] @ inputs["b"]


@pytest.fixture(scope="module")
def device():
    return devices.detect_cpu(threads=1, measure=False) | {
        "peaks": {"fp32": {"measured_gflops": 100.0, "measured_summary": "test", "theoretical_gflops": 120.0,
                           "theoretical_formula": "test"}}}


def run(tmp_path, impls, device, problems=None, rounds=1):
    problems = problems or [SuiteProblem(GemmProblem(40, 30, 20), {"set": "test"})]
    config = BenchConfig(problems, impls, threads=1, settings=FAST, suite="test", rounds=rounds)
    return run_bench(config, tmp_path / "t.json", progress_stream=None, device=device)


def test_wrong_result_is_recorded_failed_and_never_timed(tmp_path, device):
    wrong, calls = fake_impl("wrong", "ours", lambda x: right(x) + 1.0)
    doc = run(tmp_path, [wrong], device)
    (record,) = doc["records"]
    assert record["status"] == "failed" and "not timed" in record["reason"]
    assert record["error"]["value"] > record["error"]["tolerance"]
    assert "stats" not in record and "samples_ns" not in record
    assert len(calls) == 1  # the verification call only


def test_unavailable_implementation_is_recorded_with_its_reason(tmp_path, device):
    missing, calls = fake_impl("missing", "vendor", right, reason="install dlcb-kernels[vendor]")
    doc = run(tmp_path, [missing], device)
    (record,) = doc["records"]
    assert record["status"] == "unavailable" and record["reason"] == "install dlcb-kernels[vendor]"
    assert not calls


def test_ours_is_compared_with_the_fastest_vendor(tmp_path, device):
    ours, _ = fake_impl("ours-fake", "ours", right)
    fast, _ = fake_impl("fast-vendor", "vendor", right)

    def slow_compute(x):
        np.linalg.svd(np.ones((60, 60)))  # a little extra work
        return right(x)

    slow, _ = fake_impl("slow-vendor", "vendor", slow_compute)
    doc = run(tmp_path, [ours, slow, fast], device)
    by_variant = {r["implementation"].split("/")[-1]: r for r in doc["records"]}
    vs = by_variant["ours-fake"]["vs_best_vendor"]
    assert vs["implementation"] == "gemm/cpu/fast-vendor"
    expected = by_variant["ours-fake"]["stats"]["median"] / by_variant["fast-vendor"]["stats"]["median"]
    assert vs["time_ratio"] == pytest.approx(expected) and vs["speedup"] == pytest.approx(1 / expected)
    assert by_variant["fast-vendor"]["vs_best_vendor"] is None
    assert by_variant["ours-fake"]["percent_of_peak"] == pytest.approx(by_variant["ours-fake"]["gflops"])


def test_records_reach_disk_one_by_one(tmp_path, device):
    seen = []

    def spy(x):
        path = tmp_path / "t.json"
        if path.exists():
            seen.append(len(json.loads(path.read_text())["records"]))
        return right(x)

    first, _ = fake_impl("first", "vendor", right)
    second, _ = fake_impl("second", "ours", spy)
    run(tmp_path, [first, second], device)
    assert seen and seen[0] == 1  # the first record was on disk before the second ran


def test_real_implementations_agree(tmp_path, device):
    impls = registry.select(["gemm"], "ours,vendor", backend="cpu")
    doc = run(tmp_path, impls, device, [SuiteProblem(GemmProblem(70, 50, 90, trans_a=True), {})])
    by_impl = {r["implementation"]: r for r in doc["records"]}
    # numpy always runs; torch and onnxruntime are optional and then recorded as not installed.
    assert by_impl["gemm/cpu/numpy"]["status"] == "ok"
    for record in doc["records"]:
        if record["status"] != "ok":
            assert record["provider"] == "vendor" and record["status"] == "unavailable", record
            assert "not installed" in record["reason"], record
    ours = [r for r in doc["records"] if r["provider"] == "ours"]
    assert len(ours) == 1 and ours[0]["status"] == "ok"
    # Ours states the micro-kernel and the cache blocking it ran with.
    kernel = ours[0]["kernel"]
    assert ours[0]["implementation"] == f"gemm/cpu/ours-{kernel['isa']}"
    assert kernel["schedule"] in ("blocked", "narrow-n", "narrow-m") and kernel["blocking_rule"]
    assert all(isinstance(kernel[key], int) and kernel[key] > 0 for key in ("mr", "nr", "kc", "mc", "nc"))


def test_registry_selection():
    names = {i.variant for i in registry.select(["gemm"], "ours", backend="cpu")}
    assert len(names) == 1 and next(iter(names)).startswith("ours-")
    assert {i.variant for i in registry.select(["gemm"], "ours", backend="cuda")} == {"ours-cuda"}
    assert {i.variant for i in registry.select(["gemm"], "vendor", backend="cuda")} == {"cublas", "torch-cuda"}
    assert {i.variant for i in registry.select(["gemm"], "numpy")} == {"numpy"}
    assert len(registry.select(["gemm"], "all")) == len(registry.implementations("gemm"))
    with pytest.raises(ValueError, match="matches no implementation"):
        registry.select(["gemm"], "nonesuch")
    with pytest.raises(ValueError, match="at least one"):
        registry.select(["gemm"], " , ")


def test_rounds_alternate_and_pool_samples(tmp_path, device):
    order = []
    ours, _ = fake_impl("ours-fake", "ours", lambda x: order.append("ours") or right(x))
    vendor, _ = fake_impl("vendor-fake", "vendor", lambda x: order.append("vendor") or right(x))
    doc = run(tmp_path, [ours, vendor], device, rounds=3)
    assert len(doc["records"]) == 2  # one record per implementation, rewritten each round
    for record in doc["records"]:
        assert record["rounds"] == 3 and len(record["rounds_detail"]) == 3
        assert record["stats"]["count"] == sum(r["count"] for r in record["rounds_detail"])
        assert len(record["samples_ns"]) == record["stats"]["count"]
    # vendor, ours | ours, vendor | vendor, ours: the first call of each block shows the order
    firsts = [name for i, name in enumerate(order) if i == 0 or order[i - 1] != name]
    assert firsts == ["vendor", "ours", "vendor", "ours"]
    assert doc["runs"][0]["rounds"] == 3


def test_failures_are_not_repeated_across_rounds(tmp_path, device):
    wrong, calls = fake_impl("wrong", "ours", lambda x: right(x) + 1.0)
    doc = run(tmp_path, [wrong], device, rounds=3)
    assert len(calls) == 1 and doc["records"][0]["status"] == "failed"


def test_config_is_checked():
    with pytest.raises(ValueError, match="rounds"):
        BenchConfig([], [], threads=1, rounds=0)
    with pytest.raises(ValueError, match="threads"):
        BenchConfig([], [], threads=0)


class FakeCudaTarget:
    """A GPU target without a GPU: host timing under a GPU-style name, a device description
    with peaks, and a record of what the bench asked of it."""

    backend = "cuda"

    def __init__(self):
        self.timer_requests = []

    def describe(self, measure=True):
        return {"kind": "gpu", "name": "fake", "peaks": {"fp32": {"measured_gflops": 100.0, "measured_summary": "fake",
                                                                  "theoretical_gflops": 120.0}}}

    def prepare_kwargs(self):
        return {"device": 0, "stream": 5}

    def timer_for(self, run, cache="warm"):
        from dlcb_kernels.measure import HostTimer

        self.timer_requests.append(cache)
        timer = HostTimer()
        timer.name = "fake CUDA events"
        return timer

    def flusher(self):
        return lambda: None

    def monitor(self, device):
        return type("M", (), {"sample": staticmethod(lambda: {"throttled": False, "method": "fake"})})()

    def canary(self, device):
        return None

    def first_touch(self):
        return None

    def synchronize(self):
        return None


class HostArrayOnDevice:
    """A result that, like a CuPy array, must be copied back with get()."""

    def __init__(self, array):
        self.array = array

    def get(self):
        return self.array.copy()


def test_gpu_target_plumbing(tmp_path):
    seen = {}

    @contextlib.contextmanager
    def prepare(problem, inputs, threads, *, device, stream):
        seen.update(device=device, stream=stream)
        out = np.empty((problem.m, problem.n), np.float32)

        def run():
            out[:] = right(inputs)

        yield registry.PreparedRun(run, HostArrayOnDevice(out), 1, "fake kernel")

    gpu_impl = registry.Implementation("gemm", "cuda", "fake-gpu", "ours", lambda: "fake", lambda problem=None: None,
                                       prepare)
    cpu_impl, cpu_calls = fake_impl("cpu-only", "vendor", right)
    target = FakeCudaTarget()
    config = BenchConfig([SuiteProblem(GemmProblem(40, 30, 20), {"set": "test"})], [gpu_impl, cpu_impl], threads=1,
                         settings=FAST, suite="test", caches=("warm", "cold"), target=target)
    doc = run_bench(config, tmp_path / "gpu.json", progress_stream=None)
    assert seen == {"device": 0, "stream": 5}
    assert not cpu_calls                                   # another backend's implementation is not run
    assert [r["implementation"] for r in doc["records"]] == ["gemm/cuda/fake-gpu"] * 2
    assert all(r["status"] == "ok" and r["timer"] == "fake CUDA events" for r in doc["records"])
    assert target.timer_requests == ["warm", "cold"]
    assert doc["devices"][0]["kind"] == "gpu"
