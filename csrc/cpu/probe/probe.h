#pragma once
// Micro-benchmarks that measure what this CPU can do (clock, FMA throughput, memory bandwidth),
// so every kernel result can be held against a peak measured on the same machine.
#include <cstdint>
#include <string>
#include <vector>

namespace dlcb::probe {

// libgomp aborts the whole process when it cannot create a thread, so the bindings refuse team
// sizes beyond this rather than let a typo take Python down.
constexpr int kMaxThreads = 1024;

// Runs `iterations` steps of a probe's loop on the calling thread and returns a value that
// depends on all of them (so the compiler cannot drop the work).
using ChainFn = float (*)(int64_t iterations);

// Best repetitions of a probe run by every thread of an OpenMP team at once.
struct TeamTiming {
  int threads;         // team size OpenMP actually gave
  int64_t iterations;  // per thread, per repetition
  double seconds;      // wall time of the fastest repetition, common start to last finish
  // Each thread's fastest run in its own CPU time. Time the thread spent descheduled (late
  // start, other processes on a shared machine) is not in it, so it is the basis for a
  // per-core rate: the clock, or the peak a core reaches while it runs.
  std::vector<double> thread_seconds;
};

TeamTiming time_on_team(ChainFn chain, int threads, double ms_per_repeat, int repeats);

// --- clock -------------------------------------------------------------------------------
// One iteration is kAddsPerIteration dependent 1-cycle integer adds.
constexpr int64_t kAddsPerIteration = 64;
float add_chain(int64_t iterations);

// One iteration is kFmasPerIteration dependent scalar FMAs (latency-bound).
constexpr int64_t kFmasPerIteration = 16;
ChainFn fma_latency_chain_avx2();  // nullptr when not compiled for this target

// --- arithmetic throughput ------------------------------------------------------------------
// Independent accumulator chains, enough of them to keep every FMA pipe busy despite latency.
struct ThroughputKernel {
  const char* dtype;            // "fp32" or "bf16"
  const char* isa;              // "avx512", "avx2", "portable" or "avx512_bf16"
  const char* instruction;      // what each chain step executes
  int chains;                   // independent accumulators per thread
  int64_t flop_per_iteration;   // per thread: one step of every chain
  ChainFn run;
};

const ThroughputKernel* fma_chains_avx512();       // nullptr when not compiled for this target
const ThroughputKernel* fma_chains_avx2();         // nullptr when not compiled for this target
const ThroughputKernel& fma_chains_portable();
const ThroughputKernel* bf16_dot_chains_avx512();  // nullptr when not compiled for this target

// The named kernel ("auto": the best this CPU runs for dtype); nullptr when the dtype or isa
// is unknown or this CPU cannot run it.
const ThroughputKernel* select_throughput_kernel(const std::string& dtype, const std::string& isa);

// --- memory ------------------------------------------------------------------------------
struct TriadTiming {
  int threads;
  int64_t floats_per_array;
  double bytes;    // 3 arrays x 4 bytes x floats_per_array (write-allocate traffic not counted)
  double seconds;  // fastest repetition
};

TriadTiming stream_triad(int threads, int64_t floats_per_array, int repeats);

struct FirstTouchTiming {
  int threads;
  int64_t pages;       // pages of fresh anonymous memory written once each
  int64_t page_bytes;
  double seconds;      // median repetition, wall time of all threads
};

// Writes one byte to every page of `bytes` of freshly mapped memory on `threads` threads.
FirstTouchTiming first_touch(int threads, int64_t bytes, int repeats);

// --- platform ------------------------------------------------------------------------------
// (caches: common/cache_topology.h)

// The hypervisor's CPUID signature (e.g. "KVMKVMKVM"), or "" when none is present or the
// architecture has no CPUID.
std::string hypervisor_signature();

}  // namespace dlcb::probe
