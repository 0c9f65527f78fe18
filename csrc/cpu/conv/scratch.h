#pragma once
// Uninitialized float scratch, allocated by the calling thread before any parallel region.
#include <cstdint>
#include <memory>

namespace dlcb::conv {

inline std::unique_ptr<float[]> scratch_floats(int64_t count) {
  return std::unique_ptr<float[]>(new float[static_cast<size_t>(count > 0 ? count : 1)]);
}

}  // namespace dlcb::conv
