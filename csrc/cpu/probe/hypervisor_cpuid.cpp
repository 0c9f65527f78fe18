// Which hypervisor, if any, the CPU runs under: CPUID leaf 1 sets ECX bit 31 inside a virtual
// machine, and leaf 0x40000000 then returns the hypervisor's 12-byte signature (what lscpu
// shows as "Hypervisor vendor").
#if defined(DLCB_X86)
#include <cpuid.h>
#endif

#include <cstring>

#include "probe/probe.h"

namespace dlcb::probe {

std::string hypervisor_signature() {
#if defined(DLCB_X86)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 31))) return "";
  // __get_cpuid would refuse this leaf (it lies beyond the basic range), so ask directly.
  __cpuid(0x40000000, eax, ebx, ecx, edx);
  char signature[13] = {};
  std::memcpy(signature + 0, &ebx, 4);
  std::memcpy(signature + 4, &ecx, 4);
  std::memcpy(signature + 8, &edx, 4);
  // Keep printable ASCII only: the signature ends at its first NUL ("KVMKVMKVM\0\0\0"), and
  // odd bytes would not survive conversion to a Python str.
  std::string text;
  for (const char ch : signature) {
    if (ch == '\0') break;
    text += ch >= 0x20 && ch < 0x7f ? ch : '?';
  }
  return text;
#else
  return "";
#endif
}

}  // namespace dlcb::probe
