// Chooses the kernel set by what the CPU runs (checked at run time, never assumed from the
// build machine).
#include <cstdlib>
#include <cstring>

#include "common/cpu_features.h"
#include "gemm/gemm.h"

namespace dlcb::gemm {

#if !defined(DLCB_X86)
const KernelSet* kernel_set_avx512() { return nullptr; }
const KernelSet* kernel_set_avx2() { return nullptr; }
#endif

const KernelSet* select_kernel_set(const char* isa) {
  const CpuFeatures& cpu = cpu_features();
  const KernelSet* avx512 = cpu.avx512 ? kernel_set_avx512() : nullptr;
  const KernelSet* avx2 = cpu.avx2_fma ? kernel_set_avx2() : nullptr;
  if (isa == nullptr || std::strcmp(isa, "auto") == 0) {
    // DLCB_ISA forces "auto" for every kernel of the process, to test and measure the other
    // paths on a machine that has a better one.
    const char* forced = std::getenv("DLCB_ISA");
    if (forced != nullptr && forced[0] != '\0' && std::strcmp(forced, "auto") != 0) return select_kernel_set(forced);
    if (avx512) return avx512;
    if (avx2) return avx2;
    return &kernel_set_portable();
  }
  if (std::strcmp(isa, "avx512") == 0) return avx512;
  if (std::strcmp(isa, "avx2") == 0) return avx2;
  if (std::strcmp(isa, "portable") == 0) return &kernel_set_portable();
  return nullptr;
}

}  // namespace dlcb::gemm
