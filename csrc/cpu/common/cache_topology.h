#pragma once
// The CPU's caches: sizes, sharing and line size per level, read once from Linux sysfs (the
// source lscpu uses) or glibc's sysconf. The GEMM derives its cache blocking from them and the
// probes size their buffers by them.
#include <cstdint>
#include <string>
#include <vector>

namespace dlcb {

struct CacheLevel {
  int level;
  std::string type;    // "Data", "Instruction" or "Unified"
  int64_t bytes;       // one instance
  int instances;       // distinct copies across the online CPUs (0: unknown)
  int line_bytes;      // 0: unknown
  int sharing_cpus;    // logical CPUs that share one instance (0: unknown)
};

struct CacheTopology {
  std::vector<CacheLevel> levels;  // innermost first
  std::string source;              // where the figures came from
};

// Read on every call (cheap next to what uses it; callers that need it often keep a copy).
CacheTopology cache_topology();

// All last-level cache instances together, and where that figure came from.
struct LastLevelCache {
  int64_t total_bytes;
  std::string source;
};

LastLevelCache last_level_cache();

}  // namespace dlcb
