"""Devices and their peaks: the physical limits every kernel figure is held against.

detect_cpu() describes the CPU this process runs on and measures its clock, FMA throughput and
memory bandwidth; gpu_peaks() computes an NVIDIA GPU's theoretical peaks from its CUDA device
properties; detect_gpu() adds what the GPU measures (FMA throughput, copy bandwidth) and what
NVML says (driver, power limit, clock settings); peak_for() picks the peak a record is held
against and names it.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from . import _cpu, cuda
from .measure.nvml import NvmlMonitor
from .ops.gemm import ISA_ENV, available_isas, kernel_info, resolve_isa

DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8")
# numpy / framework names of the same types, as problems carry them.
DTYPE_ALIASES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "tfloat32": "tf32",
                 "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}
BASES = ("measured", "theoretical")

_SYSFS_CPU = Path("/sys/devices/system/cpu")

# CPU flags worth recording next to a kernel figure (x86 /proc/cpuinfo "flags", aarch64 "Features").
_RELEVANT_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl",
    "avx512_bf16", "avx512_vnni", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8",
    "asimd", "asimdhp", "sve", "sve2", "bf16", "i8mm",
)

# What lscpu prints for the signatures CPUID leaf 0x40000000 returns.
_HYPERVISOR_NAMES = {
    "KVMKVMKVM": "KVM",
    "Microsoft Hv": "Microsoft Hyper-V",
    "VMwareVMware": "VMware",
    "XenVMMXenVMM": "Xen",
    "TCGTCGTCGTCG": "QEMU (TCG)",
    "ACRNACRNACRN": "ACRN",
    "bhyve bhyve ": "bhyve",
    "VBoxVBoxVBox": "VirtualBox",
}

_MiB = 1 << 20
# Every probe detect_cpu runs: best of _REPEATS runs of about _MS_PER_REPEAT each. Many short
# runs rather than a few long ones: on a shared machine some of them still find the cores free.
_REPEATS = 10
_MS_PER_REPEAT = 5.0
_PROBE_TIMING = f"best of {_REPEATS} repetitions of about {_MS_PER_REPEAT:g} ms"


@dataclass(frozen=True)
class _KnownCore:
    vendor: str
    family: int
    models: frozenset[int]
    name: str
    fp32_flop_per_cycle: int | None  # per core; None: not fixed by family/model, measure it
    fma_latency_cycles: int
    source: str


def _models(*ranges: tuple[int, int]) -> frozenset[int]:
    return frozenset(m for first, last in ranges for m in range(first, last + 1))


_AMD_GUIDE = ("AMD Software Optimization Guide for family {}h processors; "
              "Agner Fog's microarchitecture manual")
_INTEL_SKYLAKE_ON = ("Intel 64 and IA-32 Architectures Optimization Reference Manual "
                     "(FMA latency 4 from Skylake on)")

# FP32 FLOP/cycle/core is 2 FMA pipes x lanes x 2. Intel cores are listed for their FMA latency
# only: one model number covers parts with one or two 512-bit FMA units, so the FLOP rate there
# comes from the measurement.
_KNOWN_CORES = (
    _KnownCore("AuthenticAMD", 0x17, _models((0x00, 0x2F)), "Zen / Zen+", 16, 5,
               "2 x 128-bit FMA pipes; " + _AMD_GUIDE.format("17")),
    _KnownCore("AuthenticAMD", 0x17, _models((0x30, 0xFF)), "Zen 2", 32, 5,
               "2 x 256-bit FMA pipes; " + _AMD_GUIDE.format("17")),
    _KnownCore("AuthenticAMD", 0x19, _models((0x00, 0x0F), (0x20, 0x5F)), "Zen 3", 32, 4,
               "2 x 256-bit FMA pipes; " + _AMD_GUIDE.format("19")),
    _KnownCore("AuthenticAMD", 0x19, _models((0x10, 0x1F), (0x60, 0x7F), (0xA0, 0xAF)), "Zen 4", 32, 4,
               "2 x 256-bit FMA pipes, a 512-bit FMA takes both: 32 FP32 FLOP/cycle with AVX2 or "
               "AVX-512 alike (CONTEXT.md); " + _AMD_GUIDE.format("19")),
    _KnownCore("GenuineIntel", 6,
               frozenset({0x4E, 0x5E, 0x55, 0x8E, 0x9E, 0xA5, 0xA6, 0x66, 0x6A, 0x6C, 0x7D, 0x7E,
                          0x8C, 0x8D, 0xA7, 0x8F, 0xCF, 0xAD, 0xAE}),
               "Skylake or later (non-hybrid)", None, 4, _INTEL_SKYLAKE_ON),
)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpuinfo_first_processor() -> dict[str, str]:
    """The fields of the first processor in /proc/cpuinfo ({} where there is no such file)."""
    text = _read(Path("/proc/cpuinfo")) or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _int_field(fields: dict[str, str], key: str) -> int | None:
    value = fields.get(key, "")
    return int(value) if value.isdigit() else None


def _physical_cores() -> int | None:
    """Distinct (package, core) pairs among the online CPUs, as lscpu counts them."""
    cores = set()
    for topology in _SYSFS_CPU.glob("cpu[0-9]*/topology"):
        package = _read(topology / "physical_package_id")
        core = _read(topology / "core_id")
        if package is not None and core is not None:
            cores.add((package, core))
    return len(cores) or None


def _memory_total_bytes() -> int | None:
    for line in (_read(Path("/proc/meminfo")) or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024  # the kernel writes kB and means KiB
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _hypervisor(flags: set[str]) -> dict | None:
    signature = _cpu.hypervisor_signature()
    if signature is not None:
        return {"vendor": _HYPERVISOR_NAMES.get(signature, signature), "signature": signature,
                "source": "CPUID leaf 0x40000000"}
    if "hypervisor" in flags:
        return {"vendor": None, "signature": None, "source": "/proc/cpuinfo 'hypervisor' flag"}
    return None


def _caches() -> dict:
    topology = _cpu.cache_topology()
    suffix = {"Data": "d", "Instruction": "i"}
    caches: dict = {"source": topology["source"]}
    for level in topology["levels"]:
        caches[f"l{level['level']}{suffix.get(level['type'], '')}"] = {
            "bytes": level["bytes"], "instances": level["instances"], "line_bytes": level["line_bytes"]}
    return caches


def _known_core(vendor: str | None, family: int | None, model: int | None) -> _KnownCore | None:
    for core in _KNOWN_CORES:
        if core.vendor == vendor and core.family == family and model in core.models:
            return core
    return None


def _cpu_model_label(vendor: str | None, family: int | None, model: int | None) -> str:
    if family is None or model is None:
        return f"{vendor or 'unknown vendor'}"
    return f"{vendor} family 0x{family:X}, model 0x{model:X}"


def _fp32_flop_per_cycle(core: _KnownCore | None, where: str, fp32_probe: dict | None,
                         clock_ghz: float | None, cores: int) -> tuple[int | None, str]:
    if core is not None and core.fp32_flop_per_cycle is not None:
        return core.fp32_flop_per_cycle, f"{core.name} ({where}): {core.source}"
    unknown = f"the table of known cores has no FLOP/cycle figure for {where}"
    if fp32_probe is None or clock_ghz is None:
        return None, f"{unknown}, and deriving one needs the measured FMA peak and clock (measure=False)"
    per_core = fp32_probe["gflops"] / (clock_ghz * cores)
    rounded = 2 ** round(math.log2(per_core))
    return rounded, (f"derived, as {unknown}: measured {fp32_probe['isa']} FMA peak / ({clock_ghz:.3f} "
                     f"GHz x {_count(cores, 'core')}) = {per_core:.1f}, rounded to a power of two")


def _cpu_peak(flop_per_cycle: int | None, flop_source: str, cores: int, clock_ghz: float | None,
              probe: dict | None, probe_summary: str, *, flop_per_cycle_known: bool) -> dict:
    """A peak entry; flop_per_cycle_known: it comes from the table of known cores, not from the
    probe itself (only then is the probe capped at the theoretical peak)."""
    if flop_per_cycle is not None and clock_ghz is not None:
        theoretical = cores * clock_ghz * flop_per_cycle
        formula = f"{_count(cores, 'core')} x {clock_ghz:.3f} GHz x {flop_per_cycle} FLOP/cycle/core"
    else:
        theoretical = None
        formula = "unknown: needs the measured clock and a FLOP/cycle figure"
    entry = {
        "theoretical_gflops": theoretical,
        "theoretical_formula": formula,
        "flop_per_cycle_per_core": flop_per_cycle,
        "flop_per_cycle_source": flop_source,
        "flop_per_cycle_known": flop_per_cycle_known,   # from the table of known cores, not the probe
        "cores": cores,
        "clock_ghz": clock_ghz,
        "measured_gflops": None,
        "measured_wall_gflops": None,
        "measured_summary": None,
        "measured_method": None,
    }
    if probe is not None:
        entry["measured_gflops"] = probe["gflops"]
        entry["measured_wall_gflops"] = probe["wall_gflops"]
        entry["measured_summary"] = f"{probe['isa']} {probe_summary}, {_count(probe['threads'], 'thread')}"
        entry["measured_method"] = (
            f"{probe['chains']} independent chains of {probe['instruction']} per thread on "
            f"{_count(probe['threads'], 'OpenMP thread')} at once; sum over threads of each one's rate "
            f"in its own CPU time (time descheduled by other work not counted), {_PROBE_TIMING}; "
            "measured_wall_gflops: all FLOP over the wall time of the best repetition")
        # A probe cannot beat the hardware: above the theoretical peak (a clock read low, a
        # disturbed timer) it is capped there, keeping the raw figure, so that no % of peak can
        # exceed 100 because of the probe. Not where the FLOP/cycle was itself derived from it.
        if flop_per_cycle_known and theoretical is not None and probe["gflops"] > theoretical:
            entry["measured_raw_gflops"] = probe["gflops"]
            entry["measured_gflops"] = theoretical
            entry["measured_summary"] += f", capped at the theoretical peak (probe gave {probe['gflops']:.1f})"
    return entry


def _triad_floats_per_array(memory_bytes: int | None) -> int:
    """Each array twice all the last-level cache together, at least 64 MiB, at most 1/16 of RAM."""
    llc_bytes, _ = _cpu.last_level_cache()
    array_bytes = max(64 * _MiB, 2 * llc_bytes)
    if memory_bytes:
        array_bytes = min(array_bytes, memory_bytes // 16)
    return max(1, array_bytes // 4)


def _triad_method(triad: dict) -> str:
    return (f"STREAM triad a = b + s*c on 3 float32 arrays of {triad['floats_per_array'] * 4 / _MiB:g} "
            f"MiB each, {_count(triad['threads'], 'thread')}, best of {_REPEATS}; bytes = 3 arrays "
            "x 4 bytes x n (the write-allocate read of a is not counted), GB/s = 1e9 bytes/s")


def _kernel_sets(default_isa: str) -> dict:
    """Which micro-kernel "auto" runs here (and whether DLCB_ISA chose it), and every kernel set's
    register and cache blocking with the rule that derived it from this CPU's caches."""
    forced = os.environ.get(ISA_ENV, "").strip()
    return {
        "default": default_isa,
        "forced_by": f"{ISA_ENV}={forced}" if forced and forced != "auto" else None,
        "blocking": {isa: kernel_info(isa) for isa in available_isas()},
    }


def detect_cpu(threads: int | None = None, measure: bool = True) -> dict:
    """Describes this CPU and, with measure=True, measures its clock, peaks and bandwidth.

    threads: the team the peaks are for (default: OpenMP's team size). The probes take about
    half a second in all; measure=False skips them and leaves every measured field None.
    The result is JSON-serializable.
    """
    if threads is None:
        threads = _cpu.omp_max_threads()
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if not isinstance(measure, bool):
        raise TypeError(f"measure must be a bool, got {type(measure).__name__}")

    kernel_isa = resolve_isa("auto")
    info = _cpuinfo_first_processor()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    vendor = info.get("vendor_id") or info.get("CPU implementer")
    family, model = _int_field(info, "cpu family"), _int_field(info, "model")
    features = dict(_cpu.cpu_features())
    physical_cores = _physical_cores()
    cores = min(threads, physical_cores) if physical_cores else threads
    hypervisor = _hypervisor(flags)
    memory_bytes = _memory_total_bytes()
    core = _known_core(vendor, family, model)
    where = _cpu_model_label(vendor, family, model)

    clock = fma_latency = fp32 = bf16 = triad = None
    if measure:
        timing = {"ms_per_repeat": _MS_PER_REPEAT, "repeats": _REPEATS}
        clock = _cpu.measure_clock(threads, **timing)
        fma_latency = _cpu.fma_latency(**timing)
        # The FMA peak of the ISA our kernels run ("auto", or what DLCB_ISA forces): on a CPU whose
        # 512-bit FMAs are twice its 256-bit ones, an AVX2 run is held against the AVX2 peak.
        fp32 = _cpu.fma_throughput("fp32", kernel_isa, threads, **timing)
        if features["avx512_bf16"]:
            bf16 = _cpu.fma_throughput("bf16", "auto", threads, **timing)
        triad = _cpu.stream_triad(threads, _triad_floats_per_array(memory_bytes), _REPEATS)
    clock_ghz = clock["ghz"] if clock else None

    reported_mhz = info.get("cpu MHz")
    max_khz = _read(_SYSFS_CPU / "cpu0/cpufreq/cpuinfo_max_freq")
    latency_cycles = core.fma_latency_cycles if core else None
    latency_ns = fma_latency["ns_per_fma"] if fma_latency else None
    if not measure:
        clock_note = "not measured (measure=False): theoretical peaks need the measured clock and are None"
    elif hypervisor is not None:
        clock_note = (f"under a hypervisor ({hypervisor['vendor'] or 'unknown'}) /proc/cpuinfo 'cpu MHz' is "
                      "what the hypervisor advertises, usually the TSC rate, not the core clock; peaks "
                      "use measured_ghz")
    else:
        clock_note = ("/proc/cpuinfo 'cpu MHz' is one momentary reading; peaks use measured_ghz, the "
                      "clock the threads sustain together on integer work")

    fp32_flop, fp32_source = _fp32_flop_per_cycle(core, where, fp32, clock_ghz, cores)
    known = core is not None and core.fp32_flop_per_cycle is not None  # else derived from the probe
    peaks = {"fp32": _cpu_peak(fp32_flop, fp32_source, cores, clock_ghz, fp32, "FMA throughput",
                               flop_per_cycle_known=known)}
    if features["avx512_bf16"]:
        bf16_flop = 2 * fp32_flop if fp32_flop is not None else None
        bf16_source = ("AVX512_BF16 vdpbf16ps: 2 FLOP per bf16 pair, twice the FP32 FMA rate of the "
                       "same width (CONTEXT.md), i.e. 2 x the fp32 figure")
        peaks["bf16"] = _cpu_peak(bf16_flop, bf16_source, cores, clock_ghz, bf16, "vdpbf16ps throughput",
                                  flop_per_cycle_known=known)

    return {
        "kind": "cpu",
        "hostname": platform.node(),
        "name": info.get("model name") or platform.processor() or platform.machine(),
        "vendor": vendor,
        "arch": platform.machine(),
        "family": family,
        "model": model,
        "stepping": _int_field(info, "stepping"),
        "microarchitecture": core.name if core else None,
        "isa": {**features, "flags": sorted(flags & set(_RELEVANT_FLAGS))},
        "kernels": _kernel_sets(kernel_isa),
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores,
        "threads_used": threads,
        "hypervisor": hypervisor,
        "caches": _caches(),
        "clock": {
            "reported_mhz": float(reported_mhz) if reported_mhz else None,
            "max_mhz": int(max_khz) / 1000 if max_khz and max_khz.isdigit() else None,
            "measured_ghz": clock_ghz,
            "method": (f"chain of dependent 1-cycle integer adds (inline asm) on "
                       f"{_count(threads, 'thread')} at once, each timed in its own CPU time; mean over "
                       f"threads of each one's {_PROBE_TIMING}"),
            "fma_latency_ns": latency_ns,
            "fma_latency_cycles": latency_cycles,
            "fma_latency_clock_ghz": latency_cycles / latency_ns if latency_cycles and latency_ns else None,
            "note": clock_note,
        },
        "peaks": peaks,
        "memory": {
            "total_bytes": memory_bytes,
            "triad_gbs": triad["gbs"] if triad else None,
            "method": _triad_method(triad) if triad else None,
        },
    }


def peak_for(device: dict, dtype: str, basis: str = "measured") -> tuple[float, str]:
    """The peak GFLOP/s a record on `device` is held against, and a label naming it.

    basis "measured" falls back to the theoretical peak, and says so, where none was measured
    (every GPU description from gpu_peaks, a GPU's tensor-core dtypes in detect_gpu's, a CPU
    detected with measure=False).
    """
    if not isinstance(device, dict):
        raise TypeError(f"device must be a dict, got {type(device).__name__}")
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    if basis not in BASES:
        raise ValueError(f"basis must be one of {', '.join(BASES)}; got {basis!r}")
    entry = (device.get("peaks") or {}).get(dtype)
    if entry is None:
        raise ValueError(f"device has no {dtype} peak")
    if basis == "measured" and entry.get("measured_gflops") is not None:
        return float(entry["measured_gflops"]), f"{dtype} measured peak ({entry['measured_summary']})"
    if entry.get("theoretical_gflops") is None:
        reason = entry.get("reason") or entry.get("theoretical_formula") or "unknown"
        raise ValueError(f"device has no {dtype} peak: {reason}")
    fallback = ""
    if basis == "measured":
        why = entry.get("no_measured_reason")
        fallback = f" (no measured peak: {why})" if why else " (no measured peak)"
    label = f"{dtype} theoretical peak{fallback}: {entry['theoretical_formula']}"
    if entry.get("caveat"):
        label += f"; {entry['caveat']}"
    return float(entry["theoretical_gflops"]), label


@dataclass(frozen=True)
class _GpuArch:
    name: str
    fp32_flop_per_clock: int          # per SM, CUDA cores
    tensor_fp16_flop_per_clock: int   # per SM, dense, FP16 inputs
    has_bf16_tf32: bool
    has_fp8: bool
    source: str


# Dense tensor figures per SM and clock; BF16 = FP16, TF32 = half, FP8 = double.
_GPU_ARCHS = {
    "7.0": _GpuArch("Volta", 128, 1024, False, False, "CONTEXT.md; NVIDIA Tesla V100 whitepaper"),
    "7.5": _GpuArch("Turing", 128, 1024, False, False,
                    "NVIDIA Turing architecture whitepaper (8 tensor cores/SM x 64 FP16 FMA/clk)"),
    "8.0": _GpuArch("Ampere GA100", 128, 2048, True, False, "CONTEXT.md; NVIDIA A100 whitepaper"),
    "8.6": _GpuArch("Ampere GA10x", 256, 1024, True, False,
                    "NVIDIA GA102 whitepaper: RTX 3090, 82 SMs at 1.695 GHz, 142 dense FP16 tensor "
                    "TFLOPS (FP16 accumulate; GeForce parts halve it with FP32 accumulate)"),
    "8.9": _GpuArch("Ada", 256, 1024, True, True,
                    "NVIDIA Ada Lovelace whitepaper: RTX 4090, 128 SMs at 2.52 GHz, 330 dense FP16 and "
                    "660 dense FP8 tensor TFLOPS (FP16 accumulate; GeForce parts halve it with FP32 "
                    "accumulate)"),
    "9.0": _GpuArch("Hopper", 256, 4096, True, True, "CONTEXT.md; NVIDIA H100 whitepaper"),
}

_GPU_PROPS = ("name", "compute_capability", "sm_count", "max_sm_clock_khz", "memory_clock_khz",
              "memory_bus_width_bits")

_H100_TENSOR_CAVEAT = ("at the maximum SM clock this overstates the sustained tensor peak by about 8%: "
                       "NVIDIA quotes H100 SXM tensor figures at 1.83 GHz (989 TFLOPS dense BF16)")


def _gpu_props(props: dict) -> tuple[str, str, int, float, float, int]:
    if not isinstance(props, dict):
        raise TypeError(f"props must be a dict, got {type(props).__name__}")
    missing = [key for key in _GPU_PROPS if key not in props]
    if missing:
        raise ValueError(f"props lacks {', '.join(missing)}")
    name, cc = props["name"], props["compute_capability"]
    if not isinstance(name, str):
        raise TypeError("props['name'] must be a str")
    if not isinstance(cc, str):
        raise TypeError("props['compute_capability'] must be a str like '9.0'")
    major, dot, minor = cc.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        raise ValueError(f"props['compute_capability'] must look like '9.0', got {cc!r}")
    numbers = []
    for key in _GPU_PROPS[2:]:
        value = props[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"props[{key!r}] must be a number")
        if not value > 0:
            raise ValueError(f"props[{key!r}] must be > 0, got {value}")
        numbers.append(value)
    sm_count, clock_khz, memory_khz, bus_bits = numbers
    if sm_count != int(sm_count) or bus_bits != int(bus_bits):
        raise ValueError("props['sm_count'] and props['memory_bus_width_bits'] must be whole numbers")
    return name, cc, int(sm_count), float(clock_khz), float(memory_khz), int(bus_bits)


def gpu_peaks(props: dict) -> dict:
    """Theoretical per-dtype peaks of an NVIDIA GPU from its CUDA device properties.

    props: {name, compute_capability "M.m", sm_count, max_sm_clock_khz, memory_clock_khz,
    memory_bus_width_bits} (cudaDeviceProp's clockRate, memoryClockRate, memoryBusWidth).
    Peak = SMs x FLOP/clock/SM x max SM clock. A compute capability missing from the table
    gives entries whose value is None with a reason. Pure: no GPU needed.
    """
    name, cc, sms, clock_khz, memory_khz, bus_bits = _gpu_props(props)
    clock_mhz = clock_khz / 1000
    arch = _GPU_ARCHS.get(cc)

    def peak(flop_per_clock: int, units: str, caveat: str | None = None) -> dict:
        entry = {
            "theoretical_gflops": sms * flop_per_clock * clock_mhz / 1000,
            "theoretical_formula": f"{sms} SMs x {flop_per_clock} FLOP/clk/SM x {clock_mhz:g} MHz ({units})",
            "flop_per_clock_per_sm": flop_per_clock,
            "units": units,
            "clock_mhz": clock_mhz,
            "source": arch.source,
        }
        if caveat:
            entry["caveat"] = caveat
        return entry

    def absent(reason: str) -> dict:
        return {"theoretical_gflops": None, "reason": reason}

    notes = []
    if arch is None:
        reason = f"compute capability {cc} is not in the table (known: {', '.join(_GPU_ARCHS)})"
        peaks = {dtype: absent(reason) for dtype in DTYPES}
    else:
        tensor = arch.tensor_fp16_flop_per_clock
        caveat = _H100_TENSOR_CAVEAT if cc == "9.0" else None
        dense = "tensor cores, dense"

        def tensor_peak(dtype: str, flop_per_clock: int, supported: bool) -> dict:
            if not supported:
                return absent(f"{arch.name} (cc {cc}) has no {dtype} tensor cores")
            return peak(flop_per_clock, dense, caveat)

        peaks = {
            "fp32": peak(arch.fp32_flop_per_clock, "CUDA cores"),
            "tf32": tensor_peak("TF32", tensor // 2, arch.has_bf16_tf32),
            "fp16": tensor_peak("FP16", tensor, True),
            "bf16": tensor_peak("BF16", tensor, arch.has_bf16_tf32),
            "fp8": tensor_peak("FP8", 2 * tensor, arch.has_fp8),
        }
        if caveat:
            notes.append(f"tensor peaks: {caveat}; the FP32 peak holds at the maximum clock "
                         "(66.9 TFLOPS at 1.98 GHz on SXM)")
        if cc in ("8.6", "8.9"):
            notes.append("tensor peaks assume FP16 accumulate (or a professional part); GeForce cards run "
                         "FP32-accumulate tensor math at half this rate")

    bandwidth_gbs = 2 * memory_khz * 1e3 * bus_bits / 8 / 1e9
    return {
        "kind": "gpu",
        "name": name,
        "compute_capability": cc,
        "architecture": arch.name if arch else None,
        "sm_count": sms,
        "max_sm_clock_mhz": clock_mhz,
        "peaks": peaks,
        "memory": {
            "bandwidth_gbs": bandwidth_gbs,
            "method": (f"2 x memory clock x bus width / 8: 2 x {memory_khz / 1000:g} MHz x "
                       f"{bus_bits} bits / 8"),
        },
        "notes": notes,
    }


_NO_TENSOR_PROBE = ("no probe measures tensor-core throughput: the theoretical tensor-core peak stands in, "
                    "as labelled")


def _gpu_measurements(index: int, monitor: NvmlMonitor) -> dict:
    ext = cuda.module()
    fp32 = ext.fma_throughput(index, "float32")
    # Read right after the longest all-SM load, while the clock is still the one it ran at.
    conditions = monitor.sample()
    fp16 = ext.fma_throughput(index, "float16")
    copy = ext.copy_bandwidth(index)
    return {
        "fp32_fma_gflops": fp32["gflops"],
        "fp16_fma_gflops": fp16["gflops"],
        "copy_gbs": copy["gbs"],
        "fp32_fma": fp32,
        "fp16_fma": fp16,
        "copy": copy,
        "conditions_after_fp32_fma": conditions,
        "note": ("fp16_fma is CUDA-core HFMA2 throughput, not a tensor-core figure; " + _NO_TENSOR_PROBE),
    }


def detect_gpu(index: int = 0, measure: bool = True) -> dict:
    """Describes CUDA device `index`: gpu_peaks() of its properties, and with measure=True its
    measured FP32/FP16 FMA throughput and copy bandwidth (about half a second in all), plus
    NVML's driver version, power limit and clock settings where nvidia-ml-py is installed.

    peaks["fp32"] gains the measured FFMA figure; the tensor-core dtypes keep their theoretical
    peaks only (no probe measures them) and say so. JSON-serializable. Needs a CUDA device.
    """
    if not isinstance(measure, bool):
        raise TypeError(f"measure must be a bool, got {type(measure).__name__}")
    props = cuda.device_properties(index)
    gpu = gpu_peaks(props)
    monitor = NvmlMonitor(index, props["pci_bus_id"])
    measured = _gpu_measurements(index, monitor) if measure else None

    for dtype, entry in gpu["peaks"].items():
        if entry.get("theoretical_gflops") is None:
            continue
        entry["measured_gflops"] = None
        if dtype != "fp32":
            entry["no_measured_reason"] = _NO_TENSOR_PROBE
        elif measured is None:
            entry["no_measured_reason"] = "not measured (measure=False)"
        else:
            entry["measured_gflops"] = measured["fp32_fma_gflops"]
            entry["measured_summary"] = f"FFMA throughput on all {gpu['sm_count']} SMs"
            entry["measured_method"] = measured["fp32_fma"]["method"]

    conditions = measured["conditions_after_fp32_fma"] if measured else {}
    if conditions.get("available"):
        gpu["notes"].append(
            f"NVML right after the FP32 FMA probe: SM clock {conditions['sm_clock_mhz']} MHz of "
            f"{conditions['max_sm_clock_mhz']} MHz max, {conditions['power_w']} W, "
            f"limiting reasons {', '.join(conditions['throttle_reasons']) or 'none'}")
    gpu.update({
        "index": index,
        "pci_bus_id": props["pci_bus_id"],
        "l2_cache_bytes": props["l2_cache_bytes"],
        "measured": measured,
        "nvml": monitor.static_info(),
    })
    gpu["memory"].update({
        "total_bytes": props["total_memory_bytes"],
        "copy_gbs": measured["copy_gbs"] if measured else None,
        "copy_method": measured["copy"]["method"] if measured else None,
    })
    return gpu


def _fmt(value, spec: str, unit: str = "") -> str:
    return "not measured" if value is None else f"{value:{spec}}{unit}"


def format_cpu(cpu: dict) -> str:
    """A human-readable summary of detect_cpu()'s result."""
    clock = cpu["clock"]
    caches = cpu.get("caches") or {}
    cache_text = ", ".join(f"{level.upper()} {info['bytes'] // 1024} KiB x{info['instances']}"
                           for level, info in caches.items() if isinstance(info, dict))
    hyper = cpu.get("hypervisor")
    lines = [
        f"CPU {cpu['name']} ({cpu.get('microarchitecture') or 'unknown microarchitecture'}, {cpu['arch']})"
        f"{' under ' + hyper['vendor'] if hyper and hyper.get('vendor') else ''}",
        f"  cores {cpu.get('physical_cores')}, logical CPUs {cpu.get('logical_cpus')}, threads used "
        f"{cpu['threads_used']}; ISA: {', '.join(k for k, v in cpu['isa'].items() if v is True) or 'baseline'}",
        f"  caches: {cache_text or 'unknown'}",
        f"  clock: measured {_fmt(clock['measured_ghz'], '.3f', ' GHz')} "
        f"(reported {_fmt(clock['reported_mhz'], '.0f', ' MHz')}: {clock['note']})",
    ]
    for dtype, peak in cpu["peaks"].items():
        lines.append(f"  {dtype} peak: theoretical {_fmt(peak['theoretical_gflops'], '.1f', ' GFLOP/s')}"
                     f" ({peak['theoretical_formula']}), measured {_fmt(peak['measured_gflops'], '.1f', ' GFLOP/s')}"
                     f"{' (' + peak['measured_summary'] + ')' if peak.get('measured_summary') else ''}")
    lines.append(f"  memory: {cpu['memory']['total_bytes'] / 2**30:.1f} GiB, triad "
                 f"{_fmt(cpu['memory']['triad_gbs'], '.1f', ' GB/s')}")
    return "\n".join(lines)


def format_gpu(gpu: dict) -> str:
    """A human-readable summary of a GPU description from gpu_peaks() or detect_gpu()."""
    lines = [f"GPU {gpu['name']} (compute capability {gpu['compute_capability']}, {gpu.get('architecture')}, "
             f"{gpu['sm_count']} SMs, max {gpu['max_sm_clock_mhz']:.0f} MHz)"]
    for dtype, peak in gpu["peaks"].items():
        value = peak.get("theoretical_gflops")
        text = f"{value / 1e3:.1f} TFLOPS ({peak['theoretical_formula']})" if value else f"n/a ({peak.get('reason')})"
        if peak.get("measured_gflops") is not None:
            text += f", measured {peak['measured_gflops'] / 1e3:.1f} TFLOPS ({peak['measured_summary']})"
        lines.append(f"  {dtype} peak: {text}")
    bandwidth = gpu.get("memory", {}).get("bandwidth_gbs")
    if bandwidth:
        lines.append(f"  memory bandwidth: {bandwidth:.0f} GB/s ({gpu['memory']['method']})")
    measured = gpu.get("measured")
    if measured:
        lines.append(f"  measured: FP16 HFMA2 {measured['fp16_fma_gflops'] / 1e3:.1f} TFLOPS (CUDA cores), "
                     f"device-to-device copy {measured['copy_gbs']:.0f} GB/s (read + write)")
    nvml = gpu.get("nvml")
    if nvml and nvml.get("available"):
        def known(value, unit):
            return "unknown" if value is None else f"{value:.0f} {unit}"

        lines.append(f"  NVML: driver {nvml['driver_version']}, power limit {known(nvml['power_limit_w'], 'W')}, "
                     f"applications clocks SM {known(nvml['applications_sm_clock_mhz'], 'MHz')} / memory "
                     f"{known(nvml['applications_mem_clock_mhz'], 'MHz')}")
    elif nvml:
        lines.append(f"  NVML: {nvml['reason']}")
    return "\n".join(lines)
