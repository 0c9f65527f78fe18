"""pytest-benchmark over dlcb's suites: `pytest benchmarks/ --benchmark-only` measures the same
problems as `dlcb bench`, the same way (dlcb_kernels.harness: checked against the reference,
warmed up, sampled to the noise target, each block watched for contention and the clock), and
prints GFLOP/s, % of peak and ours / best vendor in a table at the end of the session.

pytest-benchmark's statistics are those of the harness's samples: each is replayed into the
benchmark fixture through a virtual clock that advances by exactly that sample's time (on a GPU,
CUDA-event times), so --benchmark-max-time and friends do not change how dlcb samples; use
--dlcb-noise and --dlcb-max-time.

--dlcb-suite picks the suite (default: quick on the CPU, gpu-quick on a GPU), --dlcb-device the
device (auto: the first CUDA device when one is usable, else the CPU). Implementations that
cannot run a problem here (a vendor library not installed, a dtype it lacks) are dropped at
collection, with one line per reason. With --dlcb-table FILE the records also go into a dlcb
throughput table, rewritten atomically after every benchmark. Without --benchmark-only
(--benchmark-disable) each case only checks its result against the reference.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from dlcb_kernels import _cpu, allocator_policy, devices, environment, openmp_policy, peak_store, registry
from dlcb_kernels.bench import device_id
from dlcb_kernels.harness import Context, measure_implementation
from dlcb_kernels.measure import Settings, contention
from dlcb_kernels.records import base_record, compare_to_vendors, now_iso
from dlcb_kernels.results import Device, Record, Run, Table
from dlcb_kernels.suites import OPS, SUITES, load_suite
from dlcb_kernels.table import TableWriter
from dlcb_kernels.targets import make_target, parse_device

# The record fields a benchmark also reports in pytest-benchmark's extra_info.
EXTRA_INFO_KEYS = ("implementation", "library", "threads", "flops", "bytes", "gflops", "gbs", "percent_of_peak",
                   "converged")


def pytest_addoption(parser):
    group = parser.getgroup("dlcb")
    group.addoption("--dlcb-suite", default=None, choices=sorted(SUITES),
                    help="the suite to benchmark (default: quick on a CPU, gpu-quick on a GPU)")
    group.addoption("--dlcb-table", default=None, help="also write a dlcb throughput table (JSON) here")
    group.addoption("--dlcb-threads", type=int, default=None,
                    help="threads for every implementation (default: OpenMP's default)")
    group.addoption("--dlcb-device", default="auto",
                    help="auto, cpu, cuda or cuda:N: the device whose benchmarks run (default: auto)")
    group.addoption("--dlcb-noise", type=float, default=0.02,
                    help="relative noise IQR/median that stops sampling (default: 0.02)")
    group.addoption("--dlcb-max-time", type=float, default=2.0,
                    help="seconds of sampling per benchmark before giving up on the noise target")
    group.addoption("--dlcb-max-gflop", type=float, default=8.0,
                    help="DeepBench shapes above this many GFLOP per call are scaled down on a CPU")


def _device_kind(config) -> tuple[str, int]:
    try:
        return parse_device(config.getoption("--dlcb-device"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc):
    """The cases of the chosen suite on the chosen device, minus those that cannot run here."""
    if {"suite_problem", "impl"} - set(metafunc.fixturenames):
        return
    config = metafunc.config
    kind, _ = _device_kind(config)
    suite = config.getoption("--dlcb-suite") or ("gpu-quick" if kind == "cuda" else "quick")
    max_gflop = config.getoption("--dlcb-max-gflop")
    problems = load_suite(suite, OPS, full=kind == "cuda", max_flops=max_gflop * 1e9)
    impls = registry.select(list(OPS), "ours,vendor", backend=kind)
    cases, dropped = [], Counter()
    for sp in problems:
        for impl in impls:
            if impl.op != sp.problem.op:
                continue
            reason = impl.mismatch(sp.problem) or impl.unavailable_reason(sp.problem)
            if reason:
                dropped[(impl.variant, reason)] += 1
            else:
                cases.append((sp, impl))
    config._dlcb_dropped = dropped  # noqa: SLF001 - read by pytest_report_collectionfinish
    config._dlcb_suite = suite  # noqa: SLF001
    metafunc.parametrize("suite_problem,impl", cases,
                         ids=[f"{sp.problem.key().replace(' ', '-')}-{impl.variant}" for sp, impl in cases])


def pytest_report_collectionfinish(config, start_path, items):
    dropped = getattr(config, "_dlcb_dropped", None)
    if dropped is None:
        return []
    lines = [f"dlcb: suite {config._dlcb_suite}"]  # noqa: SLF001
    lines += [f"dlcb: dropped {count} {variant} case(s): {reason}" for (variant, reason), count in dropped.items()]
    return lines


class DlcbSession:
    def __init__(self, config):
        threads = config.getoption("--dlcb-threads") or _cpu.omp_max_threads()
        if threads < 1:
            raise pytest.UsageError("--dlcb-threads must be >= 1")
        self.threads = threads
        self.kind, index = _device_kind(config)
        self.target = make_target(self.kind, index, threads)
        self.table_path = config.getoption("--dlcb-table")
        try:
            self.settings = Settings(noise_target=config.getoption("--dlcb-noise"),
                                     max_time=config.getoption("--dlcb-max-time"),
                                     min_time=min(0.2, config.getoption("--dlcb-max-time")),
                                     settle=0.25 if self.kind == "cpu" else 0.0)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.suite = getattr(config, "_dlcb_suite", None)
        self.machine_at_start = None
        self.records: list[Record] = []
        self._device = None
        self._writer = None
        self._inputs = {}
        self._monitor = None

    @property
    def device(self) -> dict:
        if self._device is None:
            self.machine_at_start = contention.sample()
            device = self.target.describe(measure=True)
            self._device = peak_store.apply(dict(device, id=device_id(device)), when=now_iso())
        return self._device

    def inputs(self, problem):
        if problem not in self._inputs:
            self._inputs.clear()  # one problem's inputs at a time: they can be large
            self._inputs[problem] = problem.make_inputs(seed=0)
        return self._inputs[problem]

    def writer(self) -> TableWriter | None:
        if self.table_path and self._writer is None:
            run = {"run_id": uuid.uuid4().hex, "suite": self.suite or "pytest-benchmark", "started": now_iso(),
                   "finished": None, "status": "running", "threads": self.threads, "caches": ["warm"],
                   "settings": self.settings.as_dict(),
                   "harness": {"timer": "dlcb harness; pytest-benchmark replays its samples"},
                   "environment": {**environment.describe(registry.blas_info()),
                                   "openmp": openmp_policy.describe("pytest: the runtime's setting at start"),
                                   "allocator": allocator_policy.describe(
                                       None, "pytest: the C library's settings at start (GLIBC_TUNABLES)")},
                   "machine_at_start": self.machine_at_start}
            self._writer = TableWriter(self.table_path, run, self.device)
        return self._writer

    def run(self, benchmark, suite_problem, impl):
        problem = suite_problem.problem
        device = self.device
        timed = benchmark.enabled
        try:
            peak, label = devices.peak_for(device, problem.dtype, "measured")
        except ValueError as exc:  # no peak for this dtype on this device
            peak, label = None, str(exc)
        if self._monitor is None:
            self._monitor = self.target.monitor(device)
        settings = self.settings if timed else Settings(min_samples=3, min_time=0.0, max_time=0.0,
                                                        warmup_time=0.0, min_warmup=0, settle=0.0, retries=0)
        context = Context(self.target, self.threads, settings, None, self._monitor,
                          self.target.canary(device) if timed else None, peak, label,
                          first_touch=self.target.first_touch() if timed else None)
        writer = self.writer() if timed else None
        base = base_record(problem, impl, run_id=writer.run["run_id"] if writer else "pytest",
                           device_id=device["id"], cache="warm", threads=self.threads, labels=suite_problem.labels)
        inputs = self.inputs(problem)

        def verified_and_measured() -> dict:
            return measure_implementation(problem, inputs, impl, base, context, [])

        # disabled (correctness only): the fixture runs the check once; enabled: its statistics
        # come from the harness's samples, replayed below
        record = verified_and_measured() if timed else benchmark(verified_and_measured)
        if record.status == "unavailable":
            pytest.skip(f"{impl.name}: {record.reason}")
        if not record.ok:
            pytest.fail(f"{impl.name} on {problem.key()}: {record.status}: {record.reason}", pytrace=False)
        if not timed:
            return
        benchmark.group = problem.key()
        _replay(benchmark, [s * 1e-9 for s in record.samples_ns])
        benchmark.extra_info.update({key: getattr(record, key) for key in EXTRA_INFO_KEYS})
        benchmark.extra_info.update(peak_label=label, error=record.error.get("value"), contended=record.contended)
        self.records.append(record)
        same_problem = [i for i, r in enumerate(self.records) if r.problem == record.problem]
        for i, compared in zip(same_problem, compare_to_vendors([self.records[i] for i in same_problem])):
            self.records[i] = compared
        if writer is not None:  # the table's records are self.records, in the same order
            writer.append([record], flush=False)
            for i in same_problem:
                writer.put(i, self.records[i])
            writer.flush()

    def finish(self):
        if self._writer is not None:
            self._writer.finish("complete", now_iso())


class _VirtualClock:
    """A clock that only moves when told: by the time of each replayed sample."""

    def __init__(self):
        self.now = 0.0

    def read(self) -> float:
        return self.now


def _replay(benchmark, samples: list[float]) -> None:
    """Hands the harness's samples to pytest-benchmark: each round advances its clock by one."""
    clock = _VirtualClock()
    pending = iter(samples)

    def one_sample() -> None:
        clock.now += next(pending)

    benchmark._timer = clock.read  # noqa: SLF001 - pytest-benchmark has no public timer hook
    benchmark.pedantic(one_sample, rounds=len(samples), iterations=1, warmup_rounds=0)


@pytest.fixture(scope="session")
def dlcb(request):
    session = DlcbSession(request.config)
    request.config._dlcb_session = session  # noqa: SLF001 - read by pytest_terminal_summary
    yield session
    session.finish()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The session's records as a table: time, GFLOP/s, % of peak, ours / best vendor, flags."""
    session = getattr(config, "_dlcb_session", None)
    if session is None or not session.records:
        return
    from dlcb_kernels.summary import format_summary

    table = Table(runs=(Run("pytest", machine_at_start=session.machine_at_start),),
                  devices=(Device.from_json(session.device),), records=tuple(session.records))
    terminalreporter.section(f"dlcb: {len(session.records)} records on {session.device['id']}")
    terminalreporter.write_line(format_summary(table))
    if session.table_path:
        terminalreporter.write_line(f"table: {session.table_path}")
