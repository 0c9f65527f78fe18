"""GPU measurement: CUDA event timer, NVML monitor, detect_gpu and its peaks, native timing and
probes. Everything above the "on a GPU" line runs anywhere, on fakes of the extension and of
pynvml; the rest skips without a CUDA device."""

import json
import math
import sys
import types

import pytest

from dlcb_kernels import cuda, devices
from dlcb_kernels.measure import Settings, cuda_timer, measure, nvml
from dlcb_kernels.measure.cuda_timer import CudaEventTimer, choose_mode, cuda_flusher

STATUS = cuda.status()
requires_gpu = pytest.mark.skipif(not STATUS.available, reason=f"needs a CUDA device: {STATUS.reason}")


# --- a fake extension: one stream whose GPU clock advances by the work queued on it ---------------

class FakeGpu:
    """`clock` is the fake GPU time on the stream; work queued while capturing is recorded."""

    def __init__(self):
        self.clock = 0.0
        self.capturing = None   # the FakeGraphCapture recording, if any
        self.log = []

    def run(self, seconds):
        if self.capturing is not None:
            self.capturing.nodes.append(seconds)
        else:
            self.clock += seconds


def fake_extension(gpu: FakeGpu):
    ext = types.SimpleNamespace()

    class EventTimer:
        def __init__(self, device):
            self.marks = {}

        def start(self, stream):
            gpu.log.append(("start", stream))
            self.marks["start"] = gpu.clock

        def stop(self, stream):
            gpu.log.append(("stop", stream))
            self.marks["stop"] = gpu.clock

        def elapsed(self):
            return self.marks["stop"] - self.marks["start"]

    class GraphCapture:
        fail_end = None

        def __init__(self, device, stream):
            self.nodes = []

        def begin(self):
            gpu.capturing = self

        def end(self):
            gpu.capturing = None
            if GraphCapture.fail_end:
                raise RuntimeError(GraphCapture.fail_end)

        @property
        def node_count(self):
            return len(self.nodes)

        def launch(self, stream):
            gpu.log.append(("launch", stream))
            gpu.clock += sum(self.nodes) + 1e-6  # one launch overhead for the whole graph

    class L2Flusher:
        def __init__(self, device, nbytes):
            self.device, self.nbytes = device, nbytes or 100 << 20

        def flush(self, stream):
            gpu.log.append(("flush", stream))

    ext.EventTimer, ext.GraphCapture, ext.L2Flusher = EventTimer, GraphCapture, L2Flusher
    ext.spin = lambda device, stream, seconds: gpu.log.append(("spin", stream, seconds))
    ext.synchronize = lambda device: gpu.log.append(("synchronize", device))
    return ext


@pytest.fixture
def gpu(monkeypatch):
    gpu = FakeGpu()
    ext = fake_extension(gpu)
    monkeypatch.setattr(cuda, "_visible_device", lambda index, name: ext)
    gpu.ext = ext
    return gpu


class Kernel:
    """A timed call: queues `seconds` of GPU work plus a launch gap the events must not see."""

    def __init__(self, gpu, seconds):
        self.gpu, self.seconds, self.calls = gpu, seconds, 0

    def run(self):
        self.calls += 1
        self.gpu.run(self.seconds)


# --- choose_mode --------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, expected", [
    (1e-2, ("single", 1)),
    (1e-6, ("graph", 1000)),
    (100e-6, ("single", 1)),
    (99e-6, ("graph", 11)),
    (10e-6, ("graph", 100)),
    (0.3e-6, ("graph", 3334)),
    (1e-9, ("graph", cuda_timer.MAX_BATCH)),
    (0, ("graph", cuda_timer.MAX_BATCH)),
])
def test_choose_mode(seconds, expected):
    assert choose_mode(seconds) == expected


def test_choose_mode_batch_fills_a_millisecond_and_batched_on_request():
    for seconds in (1e-6, 3.7e-6, 42e-6, 99.9e-6):
        mode, n = choose_mode(seconds, graph=False)
        assert mode == "batched" and n * seconds >= 1e-3 * (1 - 1e-9) and (n - 1) * seconds < 1e-3


@pytest.mark.parametrize("bad, error", [(-1e-6, ValueError), (math.nan, ValueError), (math.inf, ValueError),
                                        (True, TypeError), ("1e-3", TypeError)])
def test_choose_mode_validates(bad, error):
    with pytest.raises(error, match="seconds_per_call"):
        choose_mode(bad)


# --- CudaEventTimer on the fake ----------------------------------------------------------------

def test_single_mode_times_one_call_after_a_head_start(gpu):
    timer = CudaEventTimer(0, stream=7)
    kernel = Kernel(gpu, 250e-6)
    assert timer.time(kernel.run) == pytest.approx(250e-6)
    assert kernel.calls == 1
    assert gpu.log == [("spin", 7, cuda_timer.HEAD_START_SECONDS), ("start", 7), ("stop", 7)]
    assert timer.name.startswith("CUDA events around one call") and "spin kernel" in timer.name


def test_batched_mode_divides_by_the_batch(gpu):
    timer = CudaEventTimer(0, stream=7, mode="batched", batch=40, head_start=0)
    kernel = Kernel(gpu, 3e-6)
    assert timer.time(kernel.run) == pytest.approx(3e-6)
    assert kernel.calls == 40
    assert timer.name == "CUDA events around 40 back-to-back calls, divided by 40"
    assert ("spin", 7, 0) not in gpu.log


def test_graph_mode_captures_once_per_function_and_times_the_launch(gpu):
    timer = CudaEventTimer(0, stream=7, mode="graph", batch=100)
    kernel = Kernel(gpu, 2e-6)
    first = timer.time(kernel.run)
    assert kernel.calls == 100                      # captured, not run
    assert first == pytest.approx(2e-6 + 1e-6 / 100)
    assert timer.time(kernel.run) == pytest.approx(first)
    assert kernel.calls == 100                      # the same bound method reuses the graph
    assert gpu.log.count(("launch", 7)) == 2
    other = Kernel(gpu, 5e-6)
    assert timer.time(other.run) == pytest.approx(5e-6 + 1e-8)
    assert other.calls == 100
    assert "graph of 100 captured calls, divided by 100" in timer.name and timer.fallback_reason is None


def test_graph_falls_back_to_batched_when_the_call_synchronizes(gpu):
    timer = CudaEventTimer(0, stream=7, mode="graph", batch=10)
    kernel = Kernel(gpu, 4e-6)

    def synchronizing():
        kernel.run()
        if gpu.capturing is not None:
            raise RuntimeError("cudaErrorStreamCaptureUnsupported: operation not permitted when stream is capturing")

    assert timer.time(synchronizing) == pytest.approx(4e-6)
    assert kernel.calls == 1 + 10                   # one call while capturing, then a batch
    assert timer.mode == "batched" and "cudaErrorStreamCaptureUnsupported" in timer.fallback_reason
    assert "fell back to batched" in timer.name and "10 back-to-back calls" in timer.name
    assert gpu.capturing is None                    # the capture was ended despite the error
    assert timer.time(kernel.run) == pytest.approx(4e-6)


def test_graph_falls_back_when_the_capture_is_invalidated(gpu):
    timer = CudaEventTimer(0, stream=7, mode="graph", batch=5)
    gpu.ext.GraphCapture.fail_end = "cudaStreamEndCapture failed: cudaErrorStreamCaptureInvalidated"
    assert timer.time(Kernel(gpu, 1e-6).run) == pytest.approx(1e-6)
    assert "cudaErrorStreamCaptureInvalidated" in timer.fallback_reason


def test_graph_falls_back_when_nothing_was_queued_on_the_stream(gpu):
    timer = CudaEventTimer(0, stream=7, mode="graph", batch=5)
    assert timer.time(lambda: None) == 0.0
    assert timer.mode == "batched" and "no work" in timer.fallback_reason


@pytest.mark.parametrize("kwargs, error, match", [
    ({"mode": "cupy"}, ValueError, "mode must be one of"),
    ({"mode": "single", "batch": 2}, ValueError, "batch must be 1"),
    ({"mode": "graph", "batch": 10, "stream": 0}, ValueError, "default"),
    ({"mode": "batched", "batch": 0}, ValueError, "batch must be >= 1"),
    ({"stream": -1}, ValueError, "stream must be >= 0"),
    ({"device": 0.0}, TypeError, "device must be an int"),
    ({"head_start": 1.0}, ValueError, "head_start"),
])
def test_timer_validates(gpu, kwargs, error, match):
    with pytest.raises(error, match=match):
        CudaEventTimer(**{"stream": 7, **kwargs})


def test_timer_drives_the_measurement_loop_with_a_cold_flush(gpu):
    timer = CudaEventTimer(0, stream=7, mode="single")
    flush = cuda_flusher(0, 7)
    kernel = Kernel(gpu, 120e-6)
    settings = Settings(min_samples=5, min_time=0, max_time=1, warmup_time=0, min_warmup=2, settle=0)
    m = measure(kernel.run, timer, settings.criterion(), warmup=settings.warmup(), settle_s=settings.settle,
                cache="cold", flush=flush)
    assert m.converged and m.stats.median == pytest.approx(120e-6)
    # The warm-up waits for each of its calls; then each sample: flush, head start, then the
    # events, all on the timer's stream.
    assert gpu.log[:6] == [("synchronize", 0)] * 2 + [
        ("flush", 7), ("spin", 7, cuda_timer.HEAD_START_SECONDS), ("start", 7), ("stop", 7)]


# --- NvmlMonitor on a fake pynvml ----------------------------------------------------------------

def fake_pynvml(reasons=0x0, old_names=False, power_supported=True, init_error=None):
    module = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    module.NVMLError = NVMLError
    module.calls = []

    def init():
        if init_error:
            raise NVMLError(init_error)

    def handle(bus_id):
        assert isinstance(bus_id, bytes)  # the binding passes it to c_char_p
        module.calls.append(bus_id)
        return "handle"

    def clock(h, kind):
        return {1: 1755, 2: 2619}[kind]

    def max_clock(h, kind):
        return {1: 1980, 2: 2619}[kind]

    def power(h):
        if not power_supported:
            raise NVMLError("Not Supported")
        return 612_345

    module.nvmlInit = init
    module.nvmlDeviceGetHandleByPciBusId = handle
    module.nvmlDeviceGetClockInfo = clock
    module.nvmlDeviceGetMaxClockInfo = max_clock
    module.nvmlDeviceGetTemperature = lambda h, sensor: 64
    module.nvmlDeviceGetPowerUsage = power
    module.nvmlDeviceGetEnforcedPowerLimit = lambda h: 700_000
    module.nvmlDeviceGetApplicationsClock = lambda h, kind: {1: 1755, 2: 2619}[kind]
    module.nvmlSystemGetDriverVersion = lambda: b"580.65.06"
    reason_name = "nvmlDeviceGetCurrentClocksThrottleReasons" if old_names else "nvmlDeviceGetCurrentClocksEventReasons"
    setattr(module, reason_name, lambda h: reasons)
    return module


def install(monkeypatch, module):
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def test_nvml_sample_reads_clocks_power_and_reasons(monkeypatch):
    module = install(monkeypatch, fake_pynvml(reasons=0x4 | 0x1))
    monitor = nvml.NvmlMonitor(0, pci_bus_id="0000:19:00.0")
    s = monitor.sample()
    assert module.calls == [b"0000:19:00.0"]
    assert s["available"] and s["sm_clock_mhz"] == 1755 and s["mem_clock_mhz"] == 2619
    assert s["max_sm_clock_mhz"] == 1980 and s["temperature_c"] == 64
    assert s["power_w"] == pytest.approx(612.345)
    assert s["throttle_reasons"] == ["gpu_idle", "sw_power_cap"] and s["throttled"] is True
    assert "NVML" in s["method"]
    json.dumps(s)


@pytest.mark.parametrize("mask, names, throttled", [
    (0x0, [], False),
    (0x1, ["gpu_idle"], False),
    (0x2 | 0x10 | 0x100, ["applications_clocks_setting", "sync_boost", "display_clock_setting"], False),
    (0x8, ["hw_slowdown"], True),
    (0x20, ["sw_thermal_slowdown"], True),
    (0x40 | 0x80, ["hw_thermal_slowdown", "hw_power_brake_slowdown"], True),
    (0x200 | 0x800, ["board_limit", "0x800"], False),
])
def test_throttle_reasons_decode(monkeypatch, mask, names, throttled):
    assert nvml.decode_throttle_reasons(mask) == names
    install(monkeypatch, fake_pynvml(reasons=mask, old_names=True))  # the pre-rename binding too
    s = nvml.NvmlMonitor(0, pci_bus_id="0000:19:00.0").sample()
    assert s["throttle_reasons"] == names and s["throttled"] is throttled


def test_nvml_unsupported_query_is_none_not_an_error(monkeypatch):
    install(monkeypatch, fake_pynvml(power_supported=False))
    assert nvml.NvmlMonitor(0, pci_bus_id="0000:19:00.0").sample()["power_w"] is None


def test_nvml_static_info(monkeypatch):
    install(monkeypatch, fake_pynvml())
    info = nvml.NvmlMonitor(0, pci_bus_id="0000:19:00.0").static_info()
    assert info == {"available": True, "pci_bus_id": "0000:19:00.0", "driver_version": "580.65.06",
                    "power_limit_w": 700.0, "applications_sm_clock_mhz": 1755,
                    "applications_mem_clock_mhz": 2619, "max_sm_clock_mhz": 1980, "max_mem_clock_mhz": 2619}


def test_nvml_absent(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    monitor = nvml.NvmlMonitor(0)                     # and CUDA is not asked for a bus id
    assert not monitor.available
    assert monitor.sample() == {"available": False, "reason": "nvidia-ml-py is not installed"}
    assert monitor.static_info()["available"] is False


def test_nvml_that_cannot_start_says_why(monkeypatch):
    install(monkeypatch, fake_pynvml(init_error="Driver Not Loaded"))
    s = nvml.NvmlMonitor(0, pci_bus_id="0000:19:00.0").sample()
    assert s["available"] is False and "Driver Not Loaded" in s["reason"] and "0000:19:00.0" in s["reason"]


# --- detect_gpu and peak_for on a faked H100 ------------------------------------------------------

H100_PROPS = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "major": 9, "minor": 0,
              "sm_count": 132, "max_sm_clock_khz": 1_980_000, "memory_clock_khz": 2_619_000,
              "memory_bus_width_bits": 5120, "l2_cache_bytes": 50 << 20, "total_memory_bytes": 80 << 30,
              "shared_memory_per_sm_bytes": 228 << 10, "pci_bus_id": "0000:19:00.0"}


@pytest.fixture
def fake_h100(monkeypatch):
    probes = types.SimpleNamespace(
        fma_throughput=lambda index, dtype: {"flops": 1e12, "seconds": 0.02,
                                             "gflops": {"float32": 60_000.0, "float16": 120_000.0}[dtype],
                                             "method": f"{dtype} chains"},
        copy_bandwidth=lambda index, nbytes=0: {"bytes_moved": 2 << 30, "seconds": 8e-4, "gbs": 2684.4,
                                                "method": "cudaMemcpyAsync"})
    monkeypatch.setattr(cuda, "device_properties", lambda index=0: dict(H100_PROPS, index=index))
    monkeypatch.setattr(cuda, "module", lambda: probes)
    install(monkeypatch, fake_pynvml(reasons=0x4))


def test_detect_gpu_adds_measured_figures_and_nvml(fake_h100):
    gpu = devices.detect_gpu(0)
    assert gpu["kind"] == "gpu" and gpu["index"] == 0 and gpu["pci_bus_id"] == "0000:19:00.0"
    assert gpu["measured"]["fp32_fma_gflops"] == 60_000.0 and gpu["measured"]["fp16_fma_gflops"] == 120_000.0
    assert gpu["measured"]["copy_gbs"] == 2684.4 and gpu["memory"]["copy_gbs"] == 2684.4
    assert gpu["measured"]["conditions_after_fp32_fma"]["throttled"] is True
    assert gpu["nvml"]["driver_version"] == "580.65.06" and gpu["nvml"]["power_limit_w"] == 700.0
    assert gpu["peaks"]["fp32"]["measured_gflops"] == 60_000.0
    assert "8%" in gpu["peaks"]["bf16"]["caveat"] and "1.83 GHz" in gpu["peaks"]["bf16"]["caveat"]
    assert "SM clock 1755 MHz of 1980 MHz max" in gpu["notes"][-1] and "sw_power_cap" in gpu["notes"][-1]
    json.dumps(gpu)
    text = devices.format_gpu(gpu)
    assert "measured 60.0 TFLOPS" in text and "HFMA2 120.0" in text and "driver 580.65.06" in text


def test_peak_for_a_detected_gpu(fake_h100):
    gpu = devices.detect_gpu(0)
    value, label = devices.peak_for(gpu, "float32")
    assert value == 60_000.0 and label == "fp32 measured peak (FFMA throughput on all 132 SMs)"
    value, label = devices.peak_for(gpu, "fp32", basis="theoretical")
    assert value == pytest.approx(66_908.16) and label.startswith("fp32 theoretical peak: 132 SMs x 256")
    for dtype in ("bfloat16", "float16", "tf32", "fp8"):
        value, label = devices.peak_for(gpu, dtype)
        assert value == gpu["peaks"][devices.DTYPE_ALIASES.get(dtype, dtype)]["theoretical_gflops"]
        assert "theoretical peak (no measured peak: no probe measures tensor-core throughput" in label
        assert "4096" in label or "2048" in label or "8192" in label
        assert "8%" in label  # the H100 tensor clock caveat travels with the label


def test_detect_gpu_without_measuring(fake_h100, monkeypatch):
    monkeypatch.setattr(cuda, "module", lambda: pytest.fail("measure=False must not run probes"))
    gpu = devices.detect_gpu(0, measure=False)
    assert gpu["measured"] is None and gpu["memory"]["copy_gbs"] is None
    value, label = devices.peak_for(gpu, "fp32")
    assert value == gpu["peaks"]["fp32"]["theoretical_gflops"]
    assert "no measured peak: not measured (measure=False)" in label
    with pytest.raises(TypeError, match="measure"):
        devices.detect_gpu(0, measure=1)


def test_detect_gpu_without_nvml(fake_h100, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    gpu = devices.detect_gpu(0)
    assert gpu["nvml"] == {"available": False, "reason": "nvidia-ml-py is not installed"}
    assert gpu["measured"]["conditions_after_fp32_fma"]["available"] is False
    assert not any("NVML" in note for note in gpu["notes"])
    assert "NVML: nvidia-ml-py is not installed" in devices.format_gpu(gpu)


# --- on a GPU ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ext():
    if not STATUS.available:
        pytest.skip(f"needs a CUDA device: {STATUS.reason}")
    return cuda.module()


@pytest.fixture(scope="module")
def theoretical():
    if not STATUS.available:
        pytest.skip(f"needs a CUDA device: {STATUS.reason}")
    return devices.gpu_peaks(cuda.device_properties(0))


@requires_gpu
def test_event_timer_times_a_known_length_kernel(ext):
    stream = ext.Stream(0)
    timer = ext.EventTimer(0)
    for seconds in (2e-3, 2e-4):
        # A head start keeps the stream busy past the host's launch of the timed spin (the first
        # launch of spin_kernel also loads its module, which would otherwise be timed).
        ext.spin(0, stream.handle, 50e-6)
        timer.start(stream.handle)
        ext.spin(0, stream.handle, seconds)
        timer.stop(stream.handle)
        # The global timer may tick once a microsecond: a spin can end up to a tick early.
        assert seconds - 2e-6 <= timer.elapsed() < seconds * 1.1 + 20e-6
    with pytest.raises(RuntimeError, match="start"):
        timer.elapsed()
    stream.synchronize()


@requires_gpu
def test_event_timer_reports_cuda_errors_and_bad_arguments(ext):
    count = STATUS.device_count
    for make in (lambda: ext.EventTimer(count), lambda: ext.Stream(count)):
        with pytest.raises(RuntimeError, match="cudaError"):
            make()
    with pytest.raises(ValueError, match="seconds"):
        ext.spin(0, 0, -1.0)
    with pytest.raises(ValueError, match="default"):
        ext.GraphCapture(0, 0)


@requires_gpu
@pytest.mark.parametrize("mode, batch, seconds", [("single", 1, 500e-6), ("batched", 20, 100e-6),
                                                  ("graph", 50, 20e-6)])
def test_cuda_event_timer_modes_time_spin_kernels(ext, mode, batch, seconds):
    stream = ext.Stream(0)
    timer = CudaEventTimer(0, stream.handle, mode=mode, batch=batch)

    def kernel():
        ext.spin(0, stream.handle, seconds)

    samples = sorted(timer.time(kernel) for _ in range(5))
    # Each spin lasts `seconds` (less a global-timer tick at most); back-to-back kernels add a
    # few microseconds at most.
    assert seconds - 2e-6 <= samples[2] < seconds * 1.05 + 5e-6, samples
    assert timer.fallback_reason is None
    stream.synchronize()


@requires_gpu
def test_graph_capture_of_the_l2_flush(ext):
    stream = ext.Stream(0)
    flusher = cuda.L2Flusher(0)
    capture = ext.GraphCapture(0, stream.handle)
    capture.begin()
    assert capture.capturing
    for _ in range(3):
        flusher.flush(stream.handle)
    capture.end()
    assert capture.ready and capture.node_count == 3
    timer = ext.EventTimer(0)
    timer.start(stream.handle)
    capture.launch(stream.handle)
    timer.stop(stream.handle)
    l2 = cuda.device_properties(0)["l2_cache_bytes"]
    assert 0 < timer.elapsed() < 0.1 and flusher.nbytes >= 2 * l2
    stream.synchronize()


@requires_gpu
def test_invalidated_capture_raises_and_leaves_the_stream_usable(ext):
    stream = ext.Stream(0)
    flusher = cuda.L2Flusher(0, nbytes=1 << 20)
    capture = ext.GraphCapture(0, stream.handle)
    capture.begin()
    flusher.flush(stream.handle)
    with pytest.raises(RuntimeError, match="cudaErrorStreamCapture"):
        stream.synchronize()  # not allowed while capturing: invalidates the capture
    with pytest.raises(RuntimeError, match="cudaErrorStreamCapture"):
        capture.end()
    assert not capture.capturing and not capture.ready
    flusher.flush(stream.handle)
    stream.synchronize()


@requires_gpu
def test_cuda_event_timer_falls_back_on_a_synchronizing_call(ext):
    stream = ext.Stream(0)
    timer = CudaEventTimer(0, stream.handle, mode="graph", batch=4)

    def synchronizing():
        ext.spin(0, stream.handle, 50e-6)
        stream.synchronize()

    assert timer.time(synchronizing) >= 50e-6
    assert timer.mode == "batched" and "cudaErrorStreamCapture" in timer.fallback_reason
    stream.synchronize()


@requires_gpu
def test_fma_probes_are_positive_and_below_peak(ext, theoretical):
    fp32_peak = theoretical["peaks"]["fp32"]["theoretical_gflops"]
    fp32 = ext.fma_throughput(0, "float32")
    assert math.isfinite(fp32["gflops"]) and 0.5 * fp32_peak < fp32["gflops"] < 1.05 * fp32_peak, fp32
    assert fp32["gflops"] == pytest.approx(fp32["flops"] / fp32["seconds"] * 1e-9)
    assert "FFMA" in fp32["method"]
    fp16 = ext.fma_throughput(0, "float16")
    assert math.isfinite(fp16["gflops"]) and 0 < fp16["gflops"] < 4.2 * fp32_peak, fp16
    fp16_tensor = theoretical["peaks"]["fp16"]["theoretical_gflops"]
    assert fp16_tensor is None or fp16["gflops"] < 1.05 * fp16_tensor
    with pytest.raises(ValueError, match="dtype"):
        ext.fma_throughput(0, "bfloat16")


@requires_gpu
def test_copy_bandwidth_is_below_the_memory_peak(ext, theoretical):
    nbytes = 256 << 20
    r = ext.copy_bandwidth(0, nbytes)
    assert r["bytes_moved"] == 2 * nbytes
    assert r["gbs"] == pytest.approx(r["bytes_moved"] / r["seconds"] * 1e-9)
    peak = theoretical["memory"]["bandwidth_gbs"]
    assert 0.3 * peak < r["gbs"] < 1.05 * peak, r
    assert ext.copy_bandwidth(0)["gbs"] > 0  # the default size
    with pytest.raises(ValueError, match="nbytes"):
        ext.copy_bandwidth(0, -1)


@requires_gpu
def test_detect_gpu_on_the_device(theoretical):
    gpu = devices.detect_gpu(0)
    json.dumps(gpu)
    value, label = devices.peak_for(gpu, "fp32")
    assert 0 < value < 1.05 * gpu["peaks"]["fp32"]["theoretical_gflops"] and "measured" in label
    assert 0 < gpu["memory"]["copy_gbs"] < 1.05 * gpu["memory"]["bandwidth_gbs"]
    if gpu["nvml"]["available"]:
        conditions = gpu["measured"]["conditions_after_fp32_fma"]
        assert 0 < conditions["sm_clock_mhz"] <= conditions["max_sm_clock_mhz"]
