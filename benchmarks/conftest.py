"""pytest-benchmark integration: each benchmark verifies the result, times it with
pytest-benchmark, and puts FLOPs, GFLOP/s and % of peak into extra_info. With
--dlcb-table FILE the same records go into a dlcb throughput table (as `dlcb bench` writes),
rewritten atomically after every benchmark.

--dlcb-device picks the device (auto: the first CUDA device when one is usable, else the CPU);
only that device's benchmarks run. On a GPU, pytest-benchmark reads a virtual clock that
advances by each call's CUDA-event time (batched or graphed for short kernels, as `dlcb bench`
does), so its statistics are the kernel's device time, not host time.
"""

from __future__ import annotations

import time
import uuid

import pytest

from dlcb_kernels import _cpu, devices, environment, registry
from dlcb_kernels.bench import device_id, host_result
from dlcb_kernels.measure import Measurement, summarize
from dlcb_kernels.records import base_record, compare_to_vendors, now_iso, timed_record
from dlcb_kernels.registry.gpu_inputs import host_inputs
from dlcb_kernels.table import TableWriter
from dlcb_kernels.targets import make_target, parse_device

# Threading runtimes keep workers spinning after a call (OpenBLAS for up to ~0.1 s): pause
# before each benchmark so the previous implementation's threads do not steal a core.
SETTLE_SECONDS = 0.25

# The record fields a benchmark also reports in pytest-benchmark's extra_info.
EXTRA_INFO_KEYS = ("implementation", "library", "threads", "flops", "bytes", "gflops", "gbs", "percent_of_peak")


def pytest_addoption(parser):
    group = parser.getgroup("dlcb")
    group.addoption("--dlcb-table", default=None, help="also write a dlcb throughput table (JSON) here")
    group.addoption("--dlcb-threads", type=int, default=None,
                    help="threads for every implementation (default: OpenMP's default)")
    group.addoption("--dlcb-device", default="auto",
                    help="auto, cpu, cuda or cuda:N: the device whose benchmarks run (default: auto)")


class VirtualClock:
    """A clock that only moves when told: by the device time of each timed call."""

    def __init__(self):
        self.now = 0.0

    def read(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class DlcbSession:
    def __init__(self, config):
        threads = config.getoption("--dlcb-threads") or _cpu.omp_max_threads()
        if threads < 1:
            raise pytest.UsageError("--dlcb-threads must be >= 1")
        self.threads = threads
        try:
            self.kind, index = parse_device(config.getoption("--dlcb-device"))
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.target = make_target(self.kind, index, threads)
        self.table_path = config.getoption("--dlcb-table")
        self._device = None
        self._writer = None
        self._inputs = {}

    @property
    def device(self) -> dict:
        if self._device is None:
            device = self.target.describe(measure=True)
            self._device = dict(device, id=device_id(device))
        return self._device

    def inputs(self, problem):
        if problem not in self._inputs:
            self._inputs.clear()  # one problem's inputs at a time: they can be large
            self._inputs[problem] = problem.make_inputs(seed=0)
        return self._inputs[problem]

    def writer(self) -> TableWriter | None:
        if self.table_path and self._writer is None:
            timer = "pytest-benchmark (time.perf_counter)" if self.kind == "cpu" else \
                "pytest-benchmark reading a virtual clock advanced by CUDA-event times"
            run = {"run_id": uuid.uuid4().hex, "suite": "pytest-benchmark", "started": now_iso(),
                   "finished": None, "status": "running", "threads": self.threads, "caches": ["warm"],
                   "harness": {"timer": timer},
                   "environment": environment.describe(registry.blas_info())}
            self._writer = TableWriter(self.table_path, run, self.device)
        return self._writer

    def run(self, benchmark, suite_problem, impl):
        problem = suite_problem.problem
        if impl.backend != self.kind:
            pytest.skip(f"{impl.name} runs on {impl.backend}; this session benchmarks {self.kind} (--dlcb-device)")
        reason = impl.mismatch(problem) or impl.unavailable_reason(problem)
        if reason:
            pytest.skip(f"{impl.name}: {reason}")
        inputs = self.inputs(problem)
        with impl.prepare(problem, inputs, self.threads, **self.target.prepare_kwargs()) as prepared:
            prepared.run()
            self.target.synchronize()
            error = problem.check_error(host_inputs(inputs), host_result(prepared.output))
            tolerance = impl.tolerance_for(problem)
            assert error <= tolerance, f"{impl.name} is wrong on {problem.key()}: error {error:.3g}"
            benchmark.group = problem.key()
            if self.kind == "cpu":
                time.sleep(SETTLE_SECONDS)
                benchmark(prepared.run)
            else:
                self._run_on_device(benchmark, prepared)
            if not benchmark.enabled:
                return
            samples = list(benchmark.stats.stats.data)
            stats = summarize(samples)
            try:
                peak, label = devices.peak_for(self.device, problem.dtype, "measured")
            except ValueError as exc:  # no peak for this dtype on this device
                peak, label = None, str(exc)
            writer = self.writer()
            base = base_record(problem, impl, run_id=writer.run["run_id"] if writer else "",
                               device_id=self.device["id"], cache="warm", threads=prepared.threads,
                               labels=suite_problem.labels)
            measurement = Measurement("warm", samples, stats, 0, "pytest-benchmark rounds", stats.rel_noise <= 0.02)
            record = timed_record(base, measurement, peak_gflops=peak, peak_label=label, error=error,
                                  library=impl.library(), algorithm=prepared.algorithm)
            benchmark.extra_info.update({key: record[key] for key in EXTRA_INFO_KEYS})
            benchmark.extra_info["peak_label"] = label
            benchmark.extra_info["error"] = error
            if writer is not None:
                writer.doc["records"].append(record)
                compare_to_vendors([r for r in writer.doc["records"] if r["problem"] == record["problem"]])
                writer.flush()

    def _run_on_device(self, benchmark, prepared) -> None:
        """pytest-benchmark over CUDA-event times: its timer is a virtual clock that each timed
        call advances by the kernel's device time."""
        timer = self.target.timer_for(prepared.run)
        clock = VirtualClock()
        per_call = timer.time(prepared.run)
        benchmark._timer = clock.read  # noqa: SLF001 - pytest-benchmark has no public timer hook
        benchmark.extra_info["timer"] = timer.name
        rounds = max(10, min(200, int(0.5 / max(per_call, 1e-6))))
        benchmark.pedantic(lambda: clock.advance(timer.time(prepared.run)), rounds=rounds, warmup_rounds=2)

    def finish(self):
        if self._writer is not None:
            self._writer.finish("complete", now_iso())


@pytest.fixture(scope="session")
def dlcb(request):
    session = DlcbSession(request.config)
    yield session
    session.finish()
