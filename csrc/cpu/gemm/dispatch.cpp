// Chooses the kernel set by what the CPU runs (checked at run time, never assumed from the
// build machine).
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/cpu_features.h"
#include "gemm/gemm.h"

namespace dlcb::gemm {
namespace {

// The value of an environment variable without surrounding blanks ("" when unset).
std::string trimmed(const char* value) {
  std::string s = value ? value : "";
  const size_t first = s.find_first_not_of(" \t\n\r"), last = s.find_last_not_of(" \t\n\r");
  return first == std::string::npos ? "" : s.substr(first, last - first + 1);
}

}  // namespace

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
    const std::string forced = trimmed(std::getenv("DLCB_ISA"));
    if (!forced.empty() && forced != "auto") return select_kernel_set(forced.c_str());
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
