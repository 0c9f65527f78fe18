// Measured clock: a chain of dependent integer adds. An add has a latency of one cycle on every
// mainstream core, so adds per second is cycles per second, whatever /proc/cpuinfo claims (a
// KVM guest there sees the TSC rate, not the core clock).
//
// The adds are inline assembly: the compiler would otherwise fold the chain into one add. Each
// adds a register, never an immediate: Intel cores from Golden Cove on (Sapphire Rapids hosts of
// H100/H200 machines) fold chains of small add-immediates at rename, several per cycle, and an
// immediate chain read 10.1 GHz on such a host. The step lives in a register the compiler
// cannot see through (an empty asm), so it cannot turn the chain back into immediates.
#include "probe/probe.h"

namespace dlcb::probe {

static_assert(kAddsPerIteration == 64, "the asm blocks below repeat 64 adds");

float add_chain(int64_t iterations) {
  uint64_t x = 0;
  uint64_t step = 1;
  asm volatile("" : "+r"(step));
  for (int64_t i = 0; i < iterations; ++i) {
#if defined(__x86_64__)
    asm volatile(".rept 64\n\taddq %1, %0\n\t.endr" : "+r"(x) : "r"(step));
#elif defined(__aarch64__)
    asm volatile(".rept 64\n\tadd %0, %0, %1\n\t.endr" : "+r"(x) : "r"(step));
#else
    // No hand-written chain for this architecture: an empty asm after each add keeps the
    // compiler from merging them, and it emits the target's plain register add.
#pragma GCC unroll 64
    for (int k = 0; k < 64; ++k) {
      x += step;
      asm volatile("" : "+r"(x));
    }
#endif
  }
  return static_cast<float>(x);
}

}  // namespace dlcb::probe
