// Why write first and read second: writing 2x the LLC evicts everything that was there, but
// leaves the cache full of dirty lines, whose write-back would then be charged to the timed
// kernel. The read pass that follows replaces them with clean lines of the buffer, so the
// kernel starts from a cache that holds none of its data and owes (almost) no write-backs.
#include "probe/llc_flusher.h"

#include <omp.h>

#include <new>

#include "common/cache_topology.h"
#include "probe/probe.h"

namespace dlcb::probe {
namespace {

// Written after every flush so the compiler must perform the read pass.
volatile uint64_t g_checksum;

}  // namespace

LlcFlusher::LlcFlusher(int64_t nbytes) : words_((nbytes + 63) / 64 * 8) {
  const size_t bytes = static_cast<size_t>(words_) * sizeof(uint64_t);
  buffer_.reset(static_cast<uint64_t*>(std::aligned_alloc(64, bytes)));
  if (!buffer_) throw std::bad_alloc();
  // Fault the pages in now, so the first flush costs what every later one does.
  flush(omp_get_max_threads());
}

int64_t LlcFlusher::default_nbytes() { return 2 * last_level_cache().total_bytes; }

void LlcFlusher::flush(int threads) {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t* const words = buffer_.get();
  const uint64_t stamp = ++stamp_;
  uint64_t checksum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : checksum)
  {
    // Same static split for both passes: each thread reads back the part it wrote, so the
    // dirty lines in its own core's private caches are replaced by clean ones as well.
#pragma omp for schedule(static)
    for (int64_t i = 0; i < words_; ++i) words[i] = stamp + static_cast<uint64_t>(i);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < words_; ++i) checksum += words[i];
  }
  g_checksum = checksum;
}

}  // namespace dlcb::probe
