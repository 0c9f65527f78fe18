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

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows [begin, end) of `count` for thread `tid` of `nt`: contiguous, sizes differing by <= 1.
inline int64_t split_begin(int64_t count, int tid, int nt) { return count * tid / nt; }

}  // namespace dlcb::rnn
