// Chooses a throughput probe by what the CPU runs (checked at run time, never assumed from the
// build machine).
#include "common/cpu_features.h"
#include "probe/probe.h"

namespace dlcb::probe {

#if !defined(DLCB_X86)
const ThroughputKernel* fma_chains_avx512() { return nullptr; }
const ThroughputKernel* fma_chains_avx2() { return nullptr; }
const ThroughputKernel* bf16_dot_chains_avx512() { return nullptr; }
ChainFn fma_latency_chain_avx2() { return nullptr; }
#endif

const ThroughputKernel* select_throughput_kernel(const std::string& dtype, const std::string& isa) {
  const CpuFeatures& cpu = cpu_features();
  if (dtype == "fp32") {
    const ThroughputKernel* avx512 = cpu.avx512 ? fma_chains_avx512() : nullptr;
    const ThroughputKernel* avx2 = cpu.avx2_fma ? fma_chains_avx2() : nullptr;
    if (isa == "auto") return avx512 ? avx512 : avx2 ? avx2 : &fma_chains_portable();
    if (isa == "avx512") return avx512;
    if (isa == "avx2") return avx2;
    if (isa == "portable") return &fma_chains_portable();
    return nullptr;
  }
  if (dtype == "bf16") {
    const ThroughputKernel* bf16 = cpu.avx512_bf16 ? bf16_dot_chains_avx512() : nullptr;
    return isa == "auto" || isa == "avx512_bf16" ? bf16 : nullptr;
  }
  return nullptr;
}

}  // namespace dlcb::probe
