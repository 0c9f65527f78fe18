// Cache blocking from the cache sizes (see blocking.h), and the per-family overrides.
#include "gemm/blocking.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "common/cache_topology.h"
#include "common/cpu_features.h"

namespace dlcb::gemm {
namespace {

int64_t round_down(int64_t v, int64_t multiple) { return std::max(multiple, v / multiple * multiple); }

std::string kib(int64_t bytes) {
  return bytes % (1 << 20) == 0 ? std::to_string(bytes >> 20) + " MiB" : std::to_string(bytes >> 10) + " KiB";
}

CacheSizes read_host_caches() {
  CacheSizes c{32 << 10, 256 << 10, 2 << 20, ""};
  const CacheTopology topo = cache_topology();
  bool l1 = false, l2 = false, l3 = false;
  for (const CacheLevel& level : topo.levels) {
    if (level.type == "Instruction" || level.bytes <= 0) continue;
    if (level.level == 1) {
      c.l1d = level.bytes;
      l1 = true;
    } else if (level.level == 2) {
      c.l2 = level.bytes;
      l2 = true;
    } else if (level.level == 3) {
      c.l3_share = level.bytes / std::max(1, level.sharing_cpus);
      l3 = true;
    }
  }
  // A machine without an L3 (many Arm cores) shares its L2 instead: half of it per core then.
  if (!l3 && l2) c.l3_share = c.l2 / 2;
  c.source = "L1d " + kib(c.l1d) + (l1 ? "" : " (default)") + ", L2 " + kib(c.l2) + (l2 ? "" : " (default)") +
             ", L3 share " + kib(c.l3_share) + (l3 ? "" : l2 ? " (no L3: half of L2)" : " (default)") +
             " from " + topo.source;
  return c;
}

// Where a measurement beat the derived blocking. Only entries that were measured belong here,
// each with the CPU and the figures that justify it.
struct Override {
  const char* vendor;
  int family;
  int model_first, model_last;
  const char* isa;
  int64_t kc, mc, nc;  // 0 keeps the derived value
  const char* note;
};

constexpr Override kOverrides[] = {
    {"AuthenticAMD", 0x19, 0x10, 0x1F, "avx512", 512, 0, 512,
     "Zen 4 (family 19h, models 10h-1Fh), AVX-512 14x32: kc 512 / nc 512 against the derived kc 208 / nc 608, "
     "1 thread, 15 interleaved rounds: 2048^3 101.9 vs 98.3 GFLOP/s, 7680x128x2560 84.6 vs 81.4"},
};

const Override* find_override(const KernelSet& ks) {
  const CpuFeatures& cpu = cpu_features();
  for (const Override& o : kOverrides)
    if (std::strcmp(o.vendor, cpu.vendor) == 0 && o.family == cpu.family && cpu.model >= o.model_first &&
        cpu.model <= o.model_last && std::strcmp(o.isa, ks.isa) == 0)
      return &o;
  return nullptr;
}

}  // namespace

const CacheSizes& host_caches() {
  static const CacheSizes caches = read_host_caches();
  return caches;
}

BlockSizes derive_block_sizes(const KernelSet& ks, const CacheSizes& c) {
  BlockSizes b;
  // The A micro-panel keeps 3/8 of L1 to itself; the rest is for the B micro-panel's lines
  // streaming through and for C.
  b.kc = round_down(std::clamp<int64_t>(c.l1d * 3 / 8 / (4 * ks.mr), 64, 1024), 16);
  // The B block takes half of L2 (packed buffers, the A micro-panel's lines and C share it).
  b.nc = round_down(std::clamp<int64_t>(c.l2 / 2 / (4 * b.kc), 4 * ks.nr, 4096), ks.nr);
  // The A panel takes half of this core's share of the L3.
  b.mc = round_down(std::clamp<int64_t>(c.l3_share / 2 / (4 * b.kc), 16 * ks.mr, 4096), ks.mr);
  // Narrow schedules: the operand packed whole and a group of the other's panels share half of
  // L2 (plan() turns this budget into a k block for the actual widths).
  b.narrow_bytes = c.l2 / 2;
  b.rule = "derived from caches (" + c.source + "): kc = 3/8 L1d / (4 mr), nc = L2 / 2 / (4 kc), "
           "mc = L3 share / 2 / (4 kc)";
  return b;
}

const BlockSizes& block_sizes(const KernelSet& ks) {
  // One entry per kernel set, filled on first use; entries are never erased, so references
  // stay valid.
  static std::mutex lock;
  static std::map<const KernelSet*, BlockSizes> cache;
  const std::lock_guard<std::mutex> guard(lock);
  auto it = cache.find(&ks);
  if (it != cache.end()) return it->second;
  BlockSizes b = derive_block_sizes(ks, host_caches());
  if (const Override* o = find_override(ks)) {
    if (o->kc) b.kc = o->kc;
    if (o->mc) b.mc = o->mc;
    if (o->nc) b.nc = o->nc;
    b.rule = std::string("override for ") + o->note + "; otherwise " + b.rule;
  }
  return cache.emplace(&ks, b).first->second;
}

}  // namespace dlcb::gemm
