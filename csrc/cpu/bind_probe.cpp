// Python binding of the device probes (dlcb_kernels.devices builds on these). Every probe
// releases the GIL while it runs; arguments are checked here so a direct call into _cpu
// cannot crash the process.
#include <omp.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>

#include <unistd.h>

#include "common/cache_topology.h"
#include "common/cpu_features.h"
#include "probe/llc_flusher.h"
#include "probe/probe.h"

namespace py = pybind11;

namespace {

using dlcb::probe::kMaxThreads;

void check_threads(int threads) {
  if (threads < 1 || threads > kMaxThreads)
    throw py::value_error("threads must be between 1 and " + std::to_string(kMaxThreads) + ", got " +
                          std::to_string(threads));
}

void check_repeats(int repeats) {
  if (repeats < 1 || repeats > 1000) throw py::value_error("repeats must be between 1 and 1000");
}

void check_timing(double ms_per_repeat, int repeats) {
  if (!(ms_per_repeat > 0.0 && ms_per_repeat <= 10000.0))
    throw py::value_error("ms_per_repeat must be > 0 and <= 10000");
  check_repeats(repeats);
}

// Linux overcommits: an allocation far beyond RAM can succeed and the first touch then wakes
// the OOM killer. Buffers are therefore held to half the physical memory.
void check_fits_in_memory(double bytes, const char* what) {
  const double physical =
      static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  if (physical > 0 && bytes > physical / 2)
    throw py::value_error(std::string(what) + " asks for " + std::to_string(bytes / (1 << 30)) +
                          " GiB, more than half of this machine's memory");
}

py::dict timing_dict(const dlcb::probe::TeamTiming& t) {
  py::dict d;
  d["threads"] = t.threads;
  d["iterations"] = t.iterations;
  d["seconds"] = t.seconds;
  return d;
}

py::dict measure_clock(int threads, double ms_per_repeat, int repeats) {
  check_threads(threads);
  check_timing(ms_per_repeat, repeats);
  dlcb::probe::TeamTiming t{};
  {
    py::gil_scoped_release release;
    t = dlcb::probe::time_on_team(dlcb::probe::add_chain, threads, ms_per_repeat, repeats);
  }
  // Each core's clock from its own timing; their mean is what cores x clock needs.
  const double adds = static_cast<double>(t.iterations * dlcb::probe::kAddsPerIteration);
  py::list per_thread;
  double sum = 0.0;
  for (const double s : t.thread_seconds) {
    per_thread.append(adds / s * 1e-9);
    sum += adds / s * 1e-9;
  }
  py::dict d = timing_dict(t);
  d["thread_ghz"] = per_thread;
  d["ghz"] = sum / static_cast<double>(t.thread_seconds.size());
  return d;
}

py::object fma_latency(double ms_per_repeat, int repeats) {
  check_timing(ms_per_repeat, repeats);
  const dlcb::probe::ChainFn chain =
      dlcb::cpu_features().avx2_fma ? dlcb::probe::fma_latency_chain_avx2() : nullptr;
  if (chain == nullptr) return py::none();
  dlcb::probe::TeamTiming t{};
  {
    py::gil_scoped_release release;
    t = dlcb::probe::time_on_team(chain, 1, ms_per_repeat, repeats);
  }
  py::dict d = timing_dict(t);
  const double fmas = static_cast<double>(t.iterations * dlcb::probe::kFmasPerIteration);
  d["ns_per_fma"] = t.thread_seconds[0] / fmas * 1e9;
  d["instruction"] = "vfmadd231ss (scalar fp32)";
  return d;
}

py::dict fma_throughput(const std::string& dtype, const std::string& isa, int threads, double ms_per_repeat,
                        int repeats) {
  if (dtype != "fp32" && dtype != "bf16")
    throw py::value_error("dtype must be 'fp32' or 'bf16', got '" + dtype + "'");
  check_threads(threads);
  check_timing(ms_per_repeat, repeats);
  const dlcb::probe::ThroughputKernel* k = dlcb::probe::select_throughput_kernel(dtype, isa);
  if (k == nullptr)
    throw py::value_error("isa '" + isa + "' is unknown for dtype '" + dtype +
                          "' or not supported by this CPU");
  dlcb::probe::TeamTiming t{};
  {
    py::gil_scoped_release release;
    t = dlcb::probe::time_on_team(k->run, threads, ms_per_repeat, repeats);
  }
  // Per core, from each thread's own CPU time; the wall-time figure beside it also shows what
  // the threads reached side by side, which a busy machine pulls down.
  const double flop_per_thread =
      static_cast<double>(t.iterations) * static_cast<double>(k->flop_per_iteration);
  double gflops = 0.0;
  for (const double s : t.thread_seconds) gflops += flop_per_thread / s * 1e-9;
  py::dict d = timing_dict(t);
  d["dtype"] = k->dtype;
  d["isa"] = k->isa;
  d["instruction"] = k->instruction;
  d["chains"] = k->chains;
  d["flop"] = flop_per_thread * t.threads;
  d["gflops"] = gflops;
  d["wall_gflops"] = flop_per_thread * t.threads / t.seconds * 1e-9;
  return d;
}

py::dict stream_triad(int threads, int64_t floats_per_array, int repeats) {
  check_threads(threads);
  if (floats_per_array < 1) throw py::value_error("floats_per_array must be >= 1");
  check_fits_in_memory(3.0 * sizeof(float) * static_cast<double>(floats_per_array), "floats_per_array");
  check_repeats(repeats);
  dlcb::probe::TriadTiming t{};
  {
    py::gil_scoped_release release;
    t = dlcb::probe::stream_triad(threads, floats_per_array, repeats);
  }
  py::dict d;
  d["threads"] = t.threads;
  d["floats_per_array"] = t.floats_per_array;
  d["bytes"] = t.bytes;
  d["seconds"] = t.seconds;
  d["gbs"] = t.bytes / t.seconds * 1e-9;
  return d;
}

py::dict first_touch(int threads, int64_t bytes, int repeats) {
  check_threads(threads);
  if (bytes < 1) throw py::value_error("bytes must be >= 1");
  check_fits_in_memory(static_cast<double>(bytes), "bytes");
  check_repeats(repeats);
  dlcb::probe::FirstTouchTiming t{};
  {
    py::gil_scoped_release release;
    t = dlcb::probe::first_touch(threads, bytes, repeats);
  }
  py::dict d;
  d["threads"] = t.threads;
  d["pages"] = t.pages;
  d["page_bytes"] = t.page_bytes;
  d["seconds"] = t.seconds;
  d["seconds_per_page"] = t.seconds / static_cast<double>(t.pages);
  return d;
}

py::dict cache_topology() {
  const dlcb::CacheTopology topo = dlcb::cache_topology();
  py::list levels;
  for (const auto& c : topo.levels) {
    py::dict level;
    level["level"] = c.level;
    level["type"] = c.type;
    level["bytes"] = c.bytes;
    level["instances"] = c.instances > 0 ? py::object(py::int_(c.instances)) : py::object(py::none());
    level["line_bytes"] = c.line_bytes > 0 ? py::object(py::int_(c.line_bytes)) : py::object(py::none());
    level["sharing_cpus"] = c.sharing_cpus > 0 ? py::object(py::int_(c.sharing_cpus)) : py::object(py::none());
    levels.append(level);
  }
  py::dict d;
  d["levels"] = levels;
  d["source"] = topo.source;
  return d;
}

}  // namespace

void bind_probe(py::module_& m) {
  m.def("measure_clock", &measure_clock, py::arg("threads") = 1, py::arg("ms_per_repeat") = 10.0,
        py::arg("repeats") = 5,
        "Core clock from a chain of dependent 1-cycle integer adds, run on `threads` threads at\n"
        "once: {'ghz' (mean over threads), 'thread_ghz' (each thread's best run, timed in its\n"
        "own CPU time), 'threads', 'iterations', 'seconds' (wall time of the best repetition)}.");
  m.def("fma_latency", &fma_latency, py::arg("ms_per_repeat") = 10.0, py::arg("repeats") = 5,
        "Latency of a dependent chain of scalar FP32 FMAs on one thread: {'ns_per_fma', ...}, or\n"
        "None when the CPU has no FMA unit this build can use.");
  m.def("fma_throughput", &fma_throughput, py::arg("dtype") = "fp32", py::arg("isa") = "auto",
        py::arg("threads") = 1, py::arg("ms_per_repeat") = 10.0, py::arg("repeats") = 5,
        "Peak arithmetic throughput from independent FMA chains on `threads` threads at once:\n"
        "{'gflops' (sum over threads of each one's rate in its own CPU time), 'wall_gflops'\n"
        "(all FLOP over the wall time of the best repetition), 'isa', 'instruction', 'chains',\n"
        "'threads', 'flop' (per repetition, all threads), 'seconds', ...}.\n"
        "dtype 'fp32' (isa 'auto', 'avx512', 'avx2', 'portable'; 2 FLOP per lane per FMA) or\n"
        "'bf16' (isa 'auto' or 'avx512_bf16': vdpbf16ps, 64 FLOP per 512-bit instruction).");
  m.def("stream_triad", &stream_triad, py::arg("threads") = 1,
        py::arg("floats_per_array") = int64_t{16} << 20, py::arg("repeats") = 5,
        "STREAM triad a = b + s*c on three float32 arrays (default 64 MiB each), first touched in\n"
        "parallel: {'gbs', 'bytes', 'seconds', ...} for the best repetition. bytes counts 3 arrays\n"
        "x 4 bytes x floats_per_array (not the write-allocate read of a); GB/s is 1e9 bytes/s.");
  m.def("first_touch", &first_touch, py::arg("threads") = 1, py::arg("bytes") = int64_t{8} << 20,
        py::arg("repeats") = 3,
        "First write to every page of `bytes` of freshly mapped memory, on `threads` threads (each\n"
        "its contiguous share): {'seconds_per_page' (wall time of the median repetition per page),\n"
        "'pages', 'page_bytes', 'seconds', 'threads'}. What a kernel pays per page of an output\n"
        "allocated fresh (page fault and zeroing), beyond writing it.");
  m.def("cache_topology", &cache_topology,
        "Cache levels, innermost first: {'levels': [{'level', 'type', 'bytes' (one instance),\n"
        "'instances', 'line_bytes', 'sharing_cpus' (logical CPUs sharing one instance)}], 'source'}.");
  m.def(
      "last_level_cache",
      [] {
        const auto llc = dlcb::last_level_cache();
        return py::make_tuple(llc.total_bytes, llc.source);
      },
      "(bytes of all last-level cache instances together, where that figure came from).");
  m.def(
      "hypervisor_signature",
      []() -> py::object {
        const std::string s = dlcb::probe::hypervisor_signature();
        return s.empty() ? py::object(py::none()) : py::object(py::str(s));
      },
      "The hypervisor's CPUID signature (e.g. 'KVMKVMKVM'), or None when there is none.");

  py::class_<dlcb::probe::LlcFlusher>(
      m, "LlcFlusher",
      "Evicts a timed kernel's data from the caches: one buffer, allocated once, written and\n"
      "then read in full by flush().")
      .def(py::init([](std::optional<int64_t> nbytes) {
             const int64_t n = nbytes.value_or(dlcb::probe::LlcFlusher::default_nbytes());
             if (n < 1) throw py::value_error("nbytes must be >= 1, got " + std::to_string(n));
             check_fits_in_memory(static_cast<double>(n), "nbytes");
             py::gil_scoped_release release;
             return new dlcb::probe::LlcFlusher(n);
           }),
           py::arg("nbytes") = py::none(),
           "nbytes defaults to twice the last-level cache (all instances; see last_level_cache()).")
      .def(
          "flush",
          [](dlcb::probe::LlcFlusher& self, std::optional<int> threads) {
            const int n = threads.value_or(omp_get_max_threads());
            check_threads(n);
            py::gil_scoped_release release;
            self.flush(n);
          },
          py::arg("threads") = py::none(),
          "Writes then reads the whole buffer on `threads` OpenMP threads (default: OpenMP's team\n"
          "size); use the threads that run the kernel, so their private caches are flushed too.")
      .def_property_readonly("nbytes", &dlcb::probe::LlcFlusher::nbytes)
      .def_static("default_nbytes", &dlcb::probe::LlcFlusher::default_nbytes);
}
