#pragma once
// A 64-byte aligned float buffer, allocated (and optionally zeroed) before any parallel region:
// an allocation failure is a std::bad_alloc in the calling thread, never inside OpenMP.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace dlcb::rnn {

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

class Buffer {
 public:
  explicit Buffer(int64_t floats, bool zero = false) {
    if (floats <= 0) return;
    const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
    p_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!p_) throw std::bad_alloc();
    if (zero) std::memset(p_.get(), 0, bytes);
  }
  float* get() const { return p_.get(); }

 private:
  std::unique_ptr<float, FreeDeleter> p_;
};

// Grow-only scratch owned by the calling thread, reused by the next call on that thread: a
// benchmark or a training loop then neither allocates nor faults in fresh pages (at DeepBench's
// sizes the input projection alone is tens of MB, and first-touch page faults cost ~5 % of a
// forward pass). Each buffer a call needs has its own slot. The memory is kept until the thread
// ends. Like Buffer, it is only ever called outside parallel regions.
enum ScratchSlot : int { kXproj, kHpack, kTiles, kDgates, kDgatesIn, kDgpack, kCarryH, kCarryC, kSlots };

inline float* thread_scratch(ScratchSlot slot, int64_t floats, bool zero = false) {
  struct Slot {
    std::unique_ptr<float, FreeDeleter> p;
    int64_t capacity = 0;
  };
  thread_local Slot slots[kSlots];
  Slot& s = slots[slot];
  if (floats <= 0) return nullptr;
  if (floats > s.capacity) {
    s.p.reset();
    s.capacity = 0;
    const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
    s.p.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!s.p) throw std::bad_alloc();
    s.capacity = floats;
  }
  if (zero) std::memset(s.p.get(), 0, static_cast<size_t>(floats) * sizeof(float));
  return s.p.get();
}

// Asks for `rows` runs of `floats` floats, `stride` floats apart, to be brought into cache. Used
// for operands the cell math reads with a large stride (a unit's input projection, dy): issued
// before the micro-kernel runs, their cache misses overlap with its arithmetic instead of
// stalling the cell math afterwards.
inline void prefetch_rows(const float* p, int64_t rows, int64_t stride, int64_t floats) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t f = 0; f < floats; f += 16) __builtin_prefetch(p + r * stride + f);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows [begin, end) of `count` for thread `tid` of `nt`: contiguous, sizes differing by <= 1.
inline int64_t split_begin(int64_t count, int tid, int nt) { return count * tid / nt; }

}  // namespace dlcb::rnn
