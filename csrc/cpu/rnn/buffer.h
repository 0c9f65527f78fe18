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
  Buffer() = default;
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

// Scratch for one call. Up to kRetainBytes it comes from grow-only buffers owned by the calling
// thread and reused by its next call: a benchmark or a training loop then neither allocates nor
// faults in fresh pages for the input projection and gate gradients (several MB to tens of MB at
// DeepBench's sizes). Larger requests are allocated for the call alone, so one huge problem does
// not pin its memory for the thread's lifetime. Each buffer a call needs has its own slot. Like
// Buffer, only ever created outside parallel regions.
enum ScratchSlot : int { kXproj, kPacked, kHpack, kTiles, kDgates, kDgatesIn, kDgpack, kCarryH, kCarryC, kSlots };

class Scratch {
 public:
  static constexpr int64_t kRetainBytes = int64_t{256} << 20;

  Scratch(ScratchSlot slot, int64_t floats, bool zero = false) {
    if (floats <= 0) return;
    if (floats * static_cast<int64_t>(sizeof(float)) > kRetainBytes) {
      own_ = Buffer(floats, zero);
      p_ = own_.get();
      return;
    }
    Buffer& kept = kept_buffers()[slot];
    int64_t& capacity = kept_capacity()[slot];
    if (floats > capacity) {
      kept = Buffer();  // free before allocating the larger one
      capacity = 0;
      kept = Buffer(floats);
      capacity = floats;
    }
    p_ = kept.get();
    if (zero) std::memset(p_, 0, static_cast<size_t>(floats) * sizeof(float));
  }
  float* get() const { return p_; }

 private:
  static Buffer* kept_buffers() {
    thread_local Buffer buffers[kSlots];
    return buffers;
  }
  static int64_t* kept_capacity() {
    thread_local int64_t capacity[kSlots] = {};
    return capacity;
  }
  Buffer own_;
  float* p_ = nullptr;
};

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
