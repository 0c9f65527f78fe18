#include "common/cpu_features.h"

#if defined(DLCB_X86)
#include <cpuid.h>

#include <cstring>
#endif

namespace dlcb {

static CpuFeatures detect() {
  CpuFeatures f;
#if defined(DLCB_X86)
  // __builtin_cpu_supports also checks that the OS saves the vector state (XCR0).
  __builtin_cpu_init();
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = f.avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx)) {
    std::memcpy(f.vendor + 0, &ebx, 4);
    std::memcpy(f.vendor + 4, &edx, 4);
    std::memcpy(f.vendor + 8, &ecx, 4);
  }
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
    // Display family and model as the SDM / AMD's APM define them (what /proc/cpuinfo shows).
    const int base_family = (eax >> 8) & 0xF, base_model = (eax >> 4) & 0xF;
    f.family = base_family == 0xF ? base_family + static_cast<int>((eax >> 20) & 0xFF) : base_family;
    f.model = base_family == 0xF || base_family == 0x6 ? base_model + static_cast<int>(((eax >> 16) & 0xF) << 4)
                                                        : base_model;
  }
#endif
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace dlcb
