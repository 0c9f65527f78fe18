"""dlcb_kernels.devices and the native probes behind it (dlcb_kernels._cpu)."""

import copy
import json

import pytest

from dlcb_kernels import _cpu, devices

# Short probe runs: these tests check that the probes work and validate, not the figures.
QUICK = {"ms_per_repeat": 2.0, "repeats": 2}

H100_SXM = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "sm_count": 132,
            "max_sm_clock_khz": 1_980_000, "memory_clock_khz": 2_619_000, "memory_bus_width_bits": 5120}
A100_SXM = {"name": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0", "sm_count": 108,
            "max_sm_clock_khz": 1_410_000, "memory_clock_khz": 1_215_000, "memory_bus_width_bits": 5120}
V100_SXM = {"name": "Tesla V100-SXM2-16GB", "compute_capability": "7.0", "sm_count": 80,
            "max_sm_clock_khz": 1_530_000, "memory_clock_khz": 877_000, "memory_bus_width_bits": 4096}


@pytest.fixture(scope="module")
def unmeasured():
    return devices.detect_cpu(measure=False)


@pytest.fixture(scope="module")
def measured_one_thread():
    return devices.detect_cpu(threads=1)


# --- detect_cpu ---------------------------------------------------------------------------------

def test_unmeasured_description_has_every_field(unmeasured):
    d = unmeasured
    assert d["kind"] == "cpu"
    assert isinstance(d["name"], str) and d["name"]
    assert d["threads_used"] == _cpu.omp_max_threads()
    assert d["logical_cpus"] >= 1
    assert d["physical_cores"] is None or 1 <= d["physical_cores"] <= d["logical_cpus"]
    assert set(d["isa"]) >= {"avx2_fma", "avx512", "avx512_bf16", "flags"}
    assert isinstance(d["caches"]["source"], str)
    assert d["memory"]["total_bytes"] > 0
    assert set(d["clock"]) >= {"reported_mhz", "measured_ghz", "method", "note"}
    assert d["hypervisor"] is None or set(d["hypervisor"]) == {"vendor", "signature", "source"}
    json.dumps(d)


def test_unmeasured_description_leaves_measured_fields_empty(unmeasured):
    d = unmeasured
    assert d["clock"]["measured_ghz"] is None and d["clock"]["fma_latency_ns"] is None
    assert d["memory"]["triad_gbs"] is None
    for peak in d["peaks"].values():
        assert peak["measured_gflops"] is None and peak["theoretical_gflops"] is None


def test_bf16_peak_exactly_when_the_cpu_has_avx512_bf16(unmeasured):
    assert ("bf16" in unmeasured["peaks"]) == unmeasured["isa"]["avx512_bf16"]


def test_caches_from_sysfs_name_levels_by_type(unmeasured):
    caches = unmeasured["caches"]
    if not caches["source"].startswith("sysfs"):
        pytest.skip("no sysfs cache information here")
    assert caches["l1d"]["bytes"] > 0 and caches["l1d"]["instances"] >= 1
    last = max((k for k in caches if k.startswith("l") and not k.endswith("i")), key=lambda k: k[1])
    assert caches[last]["bytes"] >= caches["l1d"]["bytes"]


def test_measured_clock_is_plausible(measured_one_thread):
    clock = measured_one_thread["clock"]
    assert 0.5 < clock["measured_ghz"] < 7.0
    if clock["fma_latency_clock_ghz"] is not None:
        assert 0.5 < clock["fma_latency_clock_ghz"] < 7.0


def test_measured_peaks_are_within_2x_of_theoretical(measured_one_thread):
    d = measured_one_thread
    assert d["threads_used"] == 1
    for dtype, peak in d["peaks"].items():
        assert peak["measured_gflops"] > 0, dtype
        expected = peak["cores"] * d["clock"]["measured_ghz"] * peak["flop_per_cycle_per_core"]
        assert peak["theoretical_gflops"] == pytest.approx(expected)
        assert 0.5 < peak["measured_gflops"] / expected < 2.0, dtype


def test_measured_triad_and_serializable(measured_one_thread):
    assert measured_one_thread["memory"]["triad_gbs"] > 0
    assert "3 arrays x 4 bytes" in measured_one_thread["memory"]["method"]
    json.dumps(measured_one_thread)


def test_detect_cpu_validates_arguments():
    with pytest.raises(ValueError, match="threads"):
        devices.detect_cpu(threads=0, measure=False)
    with pytest.raises(TypeError, match="threads"):
        devices.detect_cpu(threads=1.5, measure=False)
    with pytest.raises(TypeError, match="measure"):
        devices.detect_cpu(measure="no")


# --- peak_for -----------------------------------------------------------------------------------

def test_peak_for_measured_and_theoretical_labels(measured_one_thread):
    value, label = devices.peak_for(measured_one_thread, "fp32")
    assert value == measured_one_thread["peaks"]["fp32"]["measured_gflops"]
    assert label.startswith("fp32 measured peak") and "1 thread" in label
    value, label = devices.peak_for(measured_one_thread, "fp32", basis="theoretical")
    assert value == measured_one_thread["peaks"]["fp32"]["theoretical_gflops"]
    assert label.startswith("fp32 theoretical peak:") and "FLOP/cycle/core" in label


def test_peak_for_falls_back_to_theoretical_and_says_so(measured_one_thread):
    device = copy.deepcopy(measured_one_thread)
    device["peaks"]["fp32"]["measured_gflops"] = None
    value, label = devices.peak_for(device, "fp32")
    assert value == device["peaks"]["fp32"]["theoretical_gflops"]
    assert "theoretical" in label and "no measured peak" in label


def test_peak_for_rejects_what_it_cannot_answer(unmeasured):
    with pytest.raises(ValueError, match="dtype"):
        devices.peak_for(unmeasured, "fp64")
    with pytest.raises(ValueError, match="basis"):
        devices.peak_for(unmeasured, "fp32", basis="nominal")
    with pytest.raises(ValueError, match="no tf32 peak"):
        devices.peak_for(unmeasured, "tf32")
    with pytest.raises(ValueError, match="no fp32 peak"):
        devices.peak_for(unmeasured, "fp32")  # nothing measured, so no clock for a theoretical peak
    with pytest.raises(TypeError, match="device"):
        devices.peak_for([], "fp32")


# --- gpu_peaks ----------------------------------------------------------------------------------

def tflops(device, dtype):
    return device["peaks"][dtype]["theoretical_gflops"] / 1000


def test_h100_sxm_matches_published_figures():
    h100 = devices.gpu_peaks(H100_SXM)
    assert tflops(h100, "fp32") == pytest.approx(66.9, abs=0.05)
    # At the maximum clock the tensor peak overstates NVIDIA's 989 TFLOPS by about 8% ...
    assert tflops(h100, "bf16") / 989.4 == pytest.approx(1.082, abs=0.005)
    assert "8%" in h100["peaks"]["bf16"]["caveat"] and any("8%" in note for note in h100["notes"])
    # ... which is the same SMs x FLOP/clk at 1.83 GHz.
    at_tensor_clock = devices.gpu_peaks({**H100_SXM, "max_sm_clock_khz": 1_830_000})
    assert tflops(at_tensor_clock, "bf16") == pytest.approx(989.4, abs=0.5)
    assert tflops(at_tensor_clock, "tf32") == pytest.approx(494.7, abs=0.5)
    assert tflops(at_tensor_clock, "fp8") == pytest.approx(1978.9, abs=1.0)
    assert h100["memory"]["bandwidth_gbs"] == pytest.approx(3352, abs=1)
    assert "fp32" not in [k for k, v in h100["peaks"].items() if "caveat" in v]


def test_a100_matches_published_figures():
    a100 = devices.gpu_peaks(A100_SXM)
    assert tflops(a100, "fp32") == pytest.approx(19.5, abs=0.05)
    assert tflops(a100, "bf16") == pytest.approx(312, abs=0.5)
    assert tflops(a100, "fp16") == pytest.approx(312, abs=0.5)
    assert tflops(a100, "tf32") == pytest.approx(156, abs=0.5)
    assert a100["peaks"]["fp8"]["theoretical_gflops"] is None and "FP8" in a100["peaks"]["fp8"]["reason"]
    assert a100["memory"]["bandwidth_gbs"] == pytest.approx(1555, abs=1)
    assert a100["notes"] == []


def test_v100_has_fp16_tensor_cores_only():
    v100 = devices.gpu_peaks(V100_SXM)
    assert tflops(v100, "fp32") == pytest.approx(15.7, abs=0.05)
    assert tflops(v100, "fp16") == pytest.approx(125, abs=0.5)
    for dtype in ("tf32", "bf16", "fp8"):
        assert v100["peaks"][dtype]["theoretical_gflops"] is None


def test_unknown_compute_capability_gives_reasons_not_errors():
    future = devices.gpu_peaks({**H100_SXM, "compute_capability": "12.7"})
    assert future["architecture"] is None
    for peak in future["peaks"].values():
        assert peak["theoretical_gflops"] is None and "12.7" in peak["reason"]
    assert future["memory"]["bandwidth_gbs"] > 0
    with pytest.raises(ValueError, match="no bf16 peak: compute capability 12.7"):
        devices.peak_for(future, "bf16")


def test_peak_for_a_gpu_uses_the_theoretical_peak():
    value, label = devices.peak_for(devices.gpu_peaks(A100_SXM), "bf16")
    assert value == pytest.approx(311_869.44)
    assert "no measured peak" in label and "108 SMs x 2048 FLOP/clk/SM x 1410 MHz" in label


@pytest.mark.parametrize("change, error, match", [
    ({"sm_count": None}, TypeError, "sm_count"),
    ({"sm_count": 0}, ValueError, "sm_count"),
    ({"sm_count": 13.5}, ValueError, "sm_count"),
    ({"max_sm_clock_khz": -1}, ValueError, "max_sm_clock_khz"),
    ({"compute_capability": 9.0}, TypeError, "compute_capability"),
    ({"compute_capability": "sm_90"}, ValueError, "compute_capability"),
    ({"name": 7}, TypeError, "name"),
])
def test_gpu_peaks_validates_props(change, error, match):
    with pytest.raises(error, match=match):
        devices.gpu_peaks({**H100_SXM, **change})


def test_gpu_peaks_names_missing_props():
    props = dict(H100_SXM)
    del props["memory_bus_width_bits"]
    with pytest.raises(ValueError, match="memory_bus_width_bits"):
        devices.gpu_peaks(props)
    with pytest.raises(TypeError, match="props"):
        devices.gpu_peaks([H100_SXM])


# --- native probes ------------------------------------------------------------------------------

def supported_fp32_isas():
    features = _cpu.cpu_features()
    return [isa for isa, ok in (("avx512", features["avx512"]), ("avx2", features["avx2_fma"]),
                                ("portable", True)) if ok]


@pytest.mark.parametrize("isa", supported_fp32_isas())
def test_fp32_throughput_every_isa(isa):
    r = _cpu.fma_throughput("fp32", isa, 1, **QUICK)
    assert r["isa"] == isa and r["threads"] == 1 and r["gflops"] > 0


def test_bf16_throughput_counts_64_flop_per_instruction():
    if not _cpu.cpu_features()["avx512_bf16"]:
        with pytest.raises(ValueError, match="isa"):
            _cpu.fma_throughput("bf16", "auto", 1, **QUICK)
        return
    r = _cpu.fma_throughput("bf16", "auto", 1, **QUICK)
    assert r["isa"] == "avx512_bf16"
    assert r["flop"] == r["iterations"] * r["chains"] * 64


def test_clock_on_two_threads_reports_each_thread():
    r = _cpu.measure_clock(2, **QUICK)
    assert r["threads"] == 2 and len(r["thread_ghz"]) == 2
    assert r["ghz"] == pytest.approx(sum(r["thread_ghz"]) / 2)


def test_fma_latency_is_a_few_cycles():
    r = _cpu.fma_latency(**QUICK)
    if r is None:
        pytest.skip("no FMA unit this build uses")
    assert 0.2 < r["ns_per_fma"] < 20


def test_stream_triad_counts_three_arrays_of_floats():
    r = _cpu.stream_triad(1, 1 << 20, 2)
    assert r["bytes"] == 3 * 4 * (1 << 20) and r["gbs"] > 0


@pytest.mark.parametrize("call, match", [
    (lambda: _cpu.measure_clock(0), "threads"),
    (lambda: _cpu.measure_clock(10**6), "threads"),
    (lambda: _cpu.measure_clock(1, ms_per_repeat=0), "ms_per_repeat"),
    (lambda: _cpu.measure_clock(1, repeats=0), "repeats"),
    (lambda: _cpu.fma_latency(ms_per_repeat=-1), "ms_per_repeat"),
    (lambda: _cpu.fma_throughput("fp64"), "dtype"),
    (lambda: _cpu.fma_throughput("fp32", "sse9"), "isa"),
    (lambda: _cpu.fma_throughput("fp32", "auto", 0), "threads"),
    (lambda: _cpu.stream_triad(0), "threads"),
    (lambda: _cpu.stream_triad(1, 0), "floats_per_array"),
    (lambda: _cpu.stream_triad(1, 1 << 60), "floats_per_array"),  # refused, not left to the OOM killer
    (lambda: _cpu.stream_triad(1, 1 << 20, 0), "repeats"),
])
def test_native_probes_validate_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- LlcFlusher ---------------------------------------------------------------------------------

def test_llc_flusher_default_is_twice_the_last_level_cache():
    llc_bytes, source = _cpu.last_level_cache()
    assert llc_bytes > 0 and source
    assert _cpu.LlcFlusher.default_nbytes() == 2 * llc_bytes


def test_llc_flusher_flushes():
    flusher = _cpu.LlcFlusher(4 << 20)
    assert flusher.nbytes == 4 << 20
    flusher.flush()
    flusher.flush(threads=1)
    assert _cpu.LlcFlusher(100).nbytes >= 100  # rounded up to whole cache lines


def test_llc_flusher_validates():
    with pytest.raises(ValueError, match="nbytes"):
        _cpu.LlcFlusher(0)
    with pytest.raises(ValueError, match="nbytes"):
        _cpu.LlcFlusher(-1)
    with pytest.raises(ValueError, match="nbytes"):
        _cpu.LlcFlusher(1 << 62)
    with pytest.raises(TypeError):
        _cpu.LlcFlusher("64M")
    with pytest.raises(ValueError, match="threads"):
        _cpu.LlcFlusher(1 << 20).flush(threads=0)
