#pragma once
// Cache blocking per kernel set, derived from the caches of the CPU that runs it (the role of
// BLIS's config/<chip> blocksizes, computed instead of tabulated), with a table of overrides
// for CPU families where a measurement chose otherwise.
//
// Which operand each cache holds follows from the loop nests (blocking_driver.cpp):
//   blocked:  the A micro-panel (mr x kc) in L1, reused against every B micro-panel of the
//             block; the B block (kc x nc) in each core's L2; the A panel (mc x kc) in the L3.
//   narrow:   the operand packed whole (narrow N: B, narrow M: A; at most a few micro-panels
//             wide) plus a group of the other operand's micro-panels in L2, one k block deep.
#include <cstdint>
#include <string>

#include "gemm/gemm.h"

namespace dlcb::gemm {

// The sizes blocking is derived from, in bytes: one instance of each level. l3_share is this
// core's part of the L3 (one instance divided among the logical CPUs that share it).
struct CacheSizes {
  int64_t l1d, l2, l3_share;
  std::string source;
};

// Read once per process from the cache topology (common/cache_topology.h); conservative
// defaults (32 KiB, 256 KiB, 2 MiB) for a level the system does not report.
const CacheSizes& host_caches();

struct BlockSizes {
  int64_t kc, mc, nc;  // blocked schedule
  int64_t narrow_bytes;  // budget of the narrow schedules' packed blocks (plan() sets their kc)
  std::string rule;    // how they were chosen, for the record
};

// The rules applied to `caches` (no overrides): for tests and for the table's provenance.
BlockSizes derive_block_sizes(const KernelSet& ks, const CacheSizes& caches);

// What this CPU uses for ks: derive_block_sizes(ks, host_caches()), unless the override table
// has an entry for this CPU family and ISA. Computed once per kernel set.
const BlockSizes& block_sizes(const KernelSet& ks);

}  // namespace dlcb::gemm
