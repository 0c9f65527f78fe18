#pragma once
// Float scratch for the conv entry points, always obtained by the calling thread before any
// parallel region (an allocation failure is then an ordinary exception in the caller).
//
// Each use has its own slot, a grow-only buffer owned by the calling thread: repeated calls (a
// benchmark, a training loop) reuse it instead of faulting in fresh pages every time, which
// for the multi-megabyte buffers of the large layers cost ~10% of a call. Slots never nest into
// themselves: flipped-forward holds kFlippedWeights while the forward it runs uses kBatch.
#include <cstdint>
#include <memory>

namespace dlcb::conv {

enum ScratchSlot {
  kFlippedWeights, kBatch, kColumns, kPartialSums, kPadded, kShifted, kPackedWeights, kGatheredIn, kGatheredOut, kSlots
};

// What a thread keeps between calls: beyond this, the largest buffers are freed when a call
// returns (release_excess_scratch), so one huge layer does not pin its memory for the thread's
// lifetime (the RNN keeps the same bound).
constexpr int64_t kRetainBytes = int64_t{256} << 20;

struct ScratchPool {
  std::unique_ptr<float[]> buffers[kSlots];
  int64_t capacity[kSlots] = {};
};

inline ScratchPool& scratch_pool() {
  thread_local ScratchPool pool;
  return pool;
}

inline float* scratch_floats(ScratchSlot slot, int64_t count) {
  ScratchPool& pool = scratch_pool();
  if (count > pool.capacity[slot]) {
    pool.buffers[slot].reset();  // release first: the old and the new buffer need not coexist
    pool.capacity[slot] = 0;
    pool.buffers[slot].reset(new float[static_cast<size_t>(count)]);
    pool.capacity[slot] = count;
  }
  return pool.buffers[slot].get();
}

// Frees this thread's largest scratch buffers until it keeps at most kRetainBytes.
inline void release_excess_scratch() {
  ScratchPool& pool = scratch_pool();
  for (;;) {
    int64_t total = 0;
    int largest = 0;
    for (int s = 0; s < kSlots; ++s) {
      total += pool.capacity[s];
      if (pool.capacity[s] > pool.capacity[largest]) largest = s;
    }
    if (total * static_cast<int64_t>(sizeof(float)) <= kRetainBytes) return;
    pool.buffers[largest].reset();
    pool.capacity[largest] = 0;
  }
}

// Calls release_excess_scratch when a conv entry point returns, by value or by exception.
struct ScratchTrim {
  ScratchTrim() = default;
  ScratchTrim(const ScratchTrim&) = delete;
  ScratchTrim& operator=(const ScratchTrim&) = delete;
  ~ScratchTrim() { release_excess_scratch(); }
};

}  // namespace dlcb::conv
