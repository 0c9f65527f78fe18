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

inline float* scratch_floats(ScratchSlot slot, int64_t count) {
  thread_local std::unique_ptr<float[]> buffers[kSlots];
  thread_local int64_t capacity[kSlots] = {};
  if (count > capacity[slot]) {
    buffers[slot].reset();  // release first: the old and the new buffer need not coexist
    capacity[slot] = 0;
    buffers[slot].reset(new float[static_cast<size_t>(count)]);
    capacity[slot] = count;
  }
  return buffers[slot].get();
}

}  // namespace dlcb::conv
